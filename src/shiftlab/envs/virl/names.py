"""Shop and street names of the procedural cities, from per-city lexicon packs.

Each city has its own pack of given names, surnames, nouns, adjectives, category words per place type
and templates. The packs of the out-of-distribution cities share no word with New York's, so a model
trained on New York meets new names as well as new pixels (lexical shift, virl.md §3.5).

Names obey the rules that keep `milestone_info` parseable and signs drawable: ASCII letters, digits,
space and `&.'-` only, no leading/trailing quote or apostrophe, no words the task reads as structure
("intersection", "destination", "No landmark", " is on your "), at most 28 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# The 20 place types of V-IRL's benchmark (place_types_20.txt).
PLACE_TYPES: tuple[str, ...] = (
    "bank", "restaurant", "supermarket", "bakery", "cafe", "pharmacy", "hospital", "spa", "convenience_store",
    "school", "library", "park", "lodging", "laundry", "movie_theater", "book_store", "clothing_store",
    "jewelry_store", "gym", "bar",
)  # fmt: skip

MAX_NAME_LENGTH = 28
_ALLOWED = re.compile(r"^[A-Za-z0-9 &.'-]+$")
_BANNED = ("intersection", "destination", "no landmark", " is on your ")
_FIELD = re.compile(r"\{(\w+)\}")
_POSSESSIVE = re.compile(r"'s\b")
_WORD = re.compile(r"[a-z0-9]+")


def name_problem(name: str) -> str | None:
    """Why `name` may not be used as a place or street name, or None when it may."""
    if not isinstance(name, str) or not name:
        return "empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if not _ALLOWED.match(name):
        return "characters outside letters, digits, space and &.'-"
    if name[0] in "'-. &" or name[-1] in "'-&":
        return "starts or ends with punctuation"
    if "  " in name:
        return "double space"
    lowered = name.lower()
    for banned in _BANNED:
        if banned in lowered:
            return f"contains {banned.strip()!r}"
    return None


def name_words(text: str) -> set[str]:
    """The lowercase words of a name without possessive 's: "Hollis & Vane's Deli" -> {hollis, vane, deli}."""
    return set(_WORD.findall(_POSSESSIVE.sub("", text.lower())))


@dataclass(frozen=True)
class NamePack:
    """The vocabulary of one city. Templates draw each `{field}` independently from the list it names."""

    given: tuple[str, ...]
    surname: tuple[str, ...]
    noun: tuple[str, ...]
    adj: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]]  # place type -> category words ("Diner", "Trattoria")
    templates: tuple[str, ...]  # place names; "{cat}" is the place type's category word
    streets: tuple[str, ...]  # ordinary street names
    avenues: tuple[str, ...]  # names of major streets (grid avenues, ring roads)
    districts: tuple[str, ...]
    vicinity: str = "{number} {street}, {district}"
    type_templates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def vocabulary(self) -> set[str]:
        """Every word a name, street or vicinity of this pack can contain."""
        texts = [*self.given, *self.surname, *self.noun, *self.adj, *self.districts]
        texts += [word for words in self.categories.values() for word in words]
        templates = [*self.templates, *self.streets, *self.avenues, self.vicinity]
        templates += [t for group in self.type_templates.values() for t in group]
        texts += [_FIELD.sub(" ", t) for t in templates]
        return set().union(*map(name_words, texts))


class Draws:
    """Uniform draws from a seeded generator, fetched in blocks.

    A district takes tens of thousands of scalar draws; numpy's per-call overhead would dominate the
    build time, while one block call per 4096 draws is negligible. The sequence is still a pure
    function of the generator's seed.
    """

    def __init__(self, generator: np.random.Generator, block: int = 4096):
        self._generator = generator
        self._block = block
        self._values: list[float] = []
        self._next = 0

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        if self._next == len(self._values):
            self._values = self._generator.random(self._block).tolist()
            self._next = 0
        value = self._values[self._next]
        self._next += 1
        return low + (high - low) * value

    def index(self, n: int) -> int:
        return min(int(self.uniform() * n), n - 1)

    def pick(self, items: Sequence):
        return items[self.index(len(items))]

    def chance(self, p: float) -> bool:
        return self.uniform() < p


class NameMaker:
    """Unique names (case-insensitively) for the places and streets of one district."""

    def __init__(self, pack: NamePack, draws: Draws):
        self.pack = pack
        self.draws = draws
        self.used: set[str] = set()

    def place(self, place_type: str) -> str:
        templates = self.pack.type_templates.get(place_type) or self.pack.templates
        return self._unique(lambda: self._fill(self.draws.pick(templates), place_type))

    def street(self, major: bool) -> str:
        templates = self.pack.avenues if major else self.pack.streets
        return self._unique(lambda: self._fill(self.draws.pick(templates), ""))

    def release(self, name: str) -> None:
        """Give a name back, for a shop that did not fit its lot after all."""
        self.used.discard(name.lower())

    def _fill(self, template: str, place_type: str) -> str:
        def draw(match: re.Match) -> str:
            key = match.group(1)
            words = self.pack.categories[place_type] if key == "cat" else getattr(self.pack, key)
            return self.draws.pick(words)

        return _FIELD.sub(draw, template)

    def _unique(self, make: Callable[[], str]) -> str:
        for attempt in range(800):
            name = make()
            if attempt >= 80:  # the lexicon is nearly exhausted here: number the names
                name = f"{name} {attempt // 80 + 1}"
            if name_problem(name) is None and not _repeats_a_word(name) and name.lower() not in self.used:
                return self._claim(name)
        raise RuntimeError("the name pack cannot make another unique name")

    def _claim(self, name: str) -> str:
        self.used.add(name.lower())
        return name


def _repeats_a_word(name: str) -> bool:
    words = name.lower().split()
    return len(words) != len(set(words))


def _pack(
    given: str,
    surname: str,
    noun: str,
    adj: str,
    categories: Mapping[str, str],
    templates: Sequence[str],
    streets: Sequence[str],
    avenues: Sequence[str],
    districts: str,
    vicinity: str = "{number} {street}, {district}",
    type_templates: Mapping[str, Sequence[str]] | None = None,
) -> NamePack:
    """A pack from compact text: words separated by commas (so multi-word entries stay readable)."""

    def words(text: str) -> tuple[str, ...]:
        return tuple(w.strip() for w in text.split(",") if w.strip())

    missing = set(PLACE_TYPES) - set(categories)
    if missing:
        raise ValueError(f"name pack lacks category words for {sorted(missing)}")
    return NamePack(
        given=words(given), surname=words(surname), noun=words(noun), adj=words(adj),
        categories={k: words(v) for k, v in categories.items()}, templates=tuple(templates),
        streets=tuple(streets), avenues=tuple(avenues), districts=words(districts), vicinity=vicinity,
        type_templates={k: tuple(v) for k, v in (type_templates or {}).items()},
    )  # fmt: skip


NEW_YORK = _pack(
    given="Abe, Benny, Carmine, Dolores, Eddie, Frankie, Gus, Hattie, Irving, Josie, Lou, Mickey, Nate, "
    "Ozzie, Rocco, Sal, Sadie, Tillie, Vinnie, Walt, Yetta, Moe, Izzy, Rudy",
    surname="Hollis, Vane, Abramowitz, Brennan, Castellano, Delancey, Esposito, Feldman, Garrity, "
    "Halloran, Katz, Lombardi, Mulligan, Novak, Pulaski, Quinlan, Rosenberg, Schuyler, Tierney, Weiss, "
    "Zabriskie, Kowalczyk, DeLuca, Finnegan, Greenbaum, Hennessy, Kaminski, Lieberman, McGuire, "
    "Santangelo, Stuyvesant, Vanderbeek, Wexler, Rutgers, Bleecker, Varick, Lispenard, Gansevoort",
    noun="Marrowbone, Larch, Quill, Orchard, Brownstone, Ferry, Pier, Tenement, Stoop, Hydrant, Pretzel, "
    "Pickle, Knish, Skyline, Ironworks, Boxcar, Elevator, Ticker, Pigeon, Sparrow, Chestnut, Hickory, "
    "Walnut, Cobble, Gaslight, Trolley, Rooftop, Tugboat, Lamplight, Checker, Cabbie, Dockside, Subway",
    adj="Lucky, Uptown, Downtown, Crosstown, Midtown, Nickel, Dime, Brass, Honest, Famous, Original, "
    "Hungry, Empire, Knickerbocker, Gotham, Sunny, Steady, Busy",
    categories={
        "bank": "Savings, Trust, Savings & Loan",
        "restaurant": "Diner, Grill, Chophouse, Luncheonette, Deli",
        "supermarket": "Grocery, Foods, Greengrocer",
        "bakery": "Bagels, Bakeshop, Bialys",
        "cafe": "Coffee, Roasters, Coffee Roasters",
        "pharmacy": "Drugs, Apothecary",
        "hospital": "Urgent Care, Med Center, Physicians",
        "spa": "Bathhouse, Nail Salon, Wellness",
        "convenience_store": "Bodega, Newsstand, Cigar Stand",
        "school": "Academy, Prep, Conservatory",
        "library": "Library, Athenaeum",
        "park": "Park, Commons, Playground",
        "lodging": "Hotel, Inn, Hostelry",
        "laundry": "Laundromat, Cleaners, Fluff & Fold",
        "movie_theater": "Theater, Nickelodeon, Movieplex",
        "book_store": "Books, Booksellers, Bookstore",
        "clothing_store": "Outfitters, Apparel, Haberdashery",
        "jewelry_store": "Jewelers, Diamonds",
        "gym": "Gym, Athletics, Boxing Gym",
        "bar": "Tavern, Saloon, Taproom, Speakeasy",
    },
    templates=(
        "{surname}'s {cat}",
        "{given}'s {cat}",
        "{surname} & {surname} {cat}",
        "{adj} {noun} {cat}",
        "{noun} {cat}",
        "{adj} {given}'s {cat}",
    ),
    streets=("{surname} Street", "{noun} Street", "{surname} Place", "{adj} {noun} Street"),
    avenues=("{surname} Avenue", "{noun} Avenue"),
    districts="Westhaven, Ferrytown, Quillpoint, Orchardville, Brasswick, Tickerton, Larchmere, "
    "Gaslight Heights",
)

LONDON = _pack(
    given="Alfie, Harriet, Rupert, Imogen, Nigel, Tamsin, Clive, Beatrix, Oswald, Winifred, Percy, Maud, "
    "Reggie, Edith, Cedric, Philippa, Humphrey, Agatha, Barnaby, Hermione",
    surname="Pemberton, Ashworth, Whitcombe, Fenwick, Blythe, Thackeray, Pennington, Hargreave, Cavendish, "
    "Marchbank, Wetherby, Sowerby, Lockhart, Trelawney, Ainsworth, Bramwell, Dunmore, Fairweather, "
    "Goodbody, Hathaway, Kettering, Merriweather, Ormsby, Radcliffe, Stokeley, Tilbury, Whitlock",
    noun="Heron, Lantern, Thistle, Anchor, Swan, Fox, Hound, Crown, Mitre, Bell, Kettle, Teapot, Drum, "
    "Lamb, Stag, Plough, Wheatsheaf, Magpie, Robin, Badger, Otter, Raven, Unicorn, Griffin, Compass, "
    "Bramble, Hedgehog, Partridge",
    adj="Old, Royal, Jolly, Red, Black, White, Crooked, Merry, Gilded, Proper, Noble, Drowsy, Rising",
    categories={
        "bank": "Bank, Building Society",
        "restaurant": "Dining Rooms, Brasserie, Canteen, Chop House",
        "supermarket": "Grocers, Provisions, Foodhall",
        "bakery": "Bakery, Bakehouse, Patisserie",
        "cafe": "Cafe, Tea Rooms, Caff",
        "pharmacy": "Chemist, Pharmacy, Dispensary",
        "hospital": "Infirmary, Hospital, Surgery",
        "spa": "Spa, Baths, Treatment Rooms",
        "convenience_store": "Newsagent, Corner Shop, Off Licence",
        "school": "School, College, Grammar School",
        "library": "Reading Rooms, Lending Rooms",
        "park": "Gardens, Green, Fields",
        "lodging": "Guest House, Lodge, Residences",
        "laundry": "Launderette, Laundry, Wash House",
        "movie_theater": "Cinema, Picture House, Pictures",
        "book_store": "Bookshop, Antiquarian, Bookroom",
        "clothing_store": "Tailors, Clothiers, Boutique",
        "jewelry_store": "Jewellers, Goldsmiths, Silversmiths",
        "gym": "Fitness, Sporting Club, Health Club",
        "bar": "Arms, Pub, Wine Bar, Ale House",
    },
    templates=(
        "{surname} & Sons {cat}",
        "{surname}'s {cat}",
        "{adj} {noun} {cat}",
        "{surname} {cat}",
        "The {noun} {cat}",
    ),
    streets=(
        "{surname} Road",
        "{noun} Lane",
        "{surname} Row",
        "{noun} Mews",
        "{surname} Terrace",
        "{noun} Walk",
        "{adj} {noun} Yard",
    ),
    avenues=("{surname} Road", "{noun} Road", "{adj} {noun} Road"),
    districts="Marylebourne, Heronsgate, Thistlecombe, Ravensbury, Kettlewick, Mitreford",
    type_templates={"bar": ("The {noun} & {noun}", "The {adj} {noun}", "The {surname} {cat}")},
)

MELBOURNE = _pack(
    given="Lachlan, Matilda, Banjo, Kylie, Darcy, Mackenzie, Ned, Tahlia, Jarrah, Skye, Bronte, Callum, "
    "Indi, Harley, Shane, Tegan",
    surname="Hargreaves, McAllister, Prendergast, Kowalski, Papadopoulos, Nguyen, Fitzgibbon, Costa, "
    "Hutchins, Lindsay, McKinnon, Rowlands, Stavros, Tran, Walsh, Zappia, Bellamy, Crowther, Dwyer, "
    "Elphinstone",
    noun="Wattle, Kookaburra, Jacaranda, Lyrebird, Wombat, Possum, Cockatoo, Galah, Banksia, Eucalypt, "
    "Tramline, Laneway, Sandstone, Bluestone, Southerly, Swagman, Emu, Platypus, Koala, Currawong, "
    "Saltbush, Rosella, Boab, Quokka",
    adj="Bonza, Sunburnt, Southern, Dusty, Salty, Cheeky, Sleepy, Wild, Blue, Coastal, Lazy, Electric",
    categories={
        "bank": "Bank, Credit Union",
        "restaurant": "Eatery, Dining, Kitchen, Bistro",
        "supermarket": "Supermarket, Foodstore, Fresh Food",
        "bakery": "Bakery, Pie Shop, Hot Bread",
        "cafe": "Espresso, Cafe, Brew Bar",
        "pharmacy": "Chemist, Pharmacy",
        "hospital": "Hospital, Medical Clinic, Health Hub",
        "spa": "Day Spa, Float Centre",
        "convenience_store": "Milk Bar, Mini Mart",
        "school": "Grammar, College, Primary School",
        "library": "Reading Room, Book Exchange",
        "park": "Reserve, Gardens, Oval",
        "lodging": "Motel, Apartments, Backpackers",
        "laundry": "Laundry, Laundrette, Dry Cleaning",
        "movie_theater": "Cinema, Picture Theatre",
        "book_store": "Bookshop, Book Barn",
        "clothing_store": "Boutique, Threads, Surf Shop",
        "jewelry_store": "Jewellers, Opals",
        "gym": "Fitness, Health Club, Strength Lab",
        "bar": "Wine Bar, Brewhouse, Public Bar, Lounge",
    },
    templates=(
        "{adj} {noun} {cat}",
        "{noun} {cat}",
        "{surname}'s {cat}",
        "{given} & {given}",
        "{given}'s {cat}",
        "{noun} & {noun} {cat}",
    ),
    streets=("{noun} Lane", "{surname} Crescent", "{noun} Grove", "{noun} Arcade", "{adj} {noun} Lane"),
    avenues=("{surname} Parade", "{surname} Esplanade", "{noun} Parade"),
    districts="Wattlebank, Jarrahvale, Galahmere, Lyrebird Quay, Bluestone Flat",
)

SAN_FRANCISCO = _pack(
    given="Juniper, Dashiell, Marisol, Ezra, Harvey, Luz, Jasper, Soledad, Kenji, Rosalind, Cyrus, Paloma, "
    "Ignatius, Wren, Beatriz, Otis",
    surname="Castellanos, Delgado, Whitaker, Lindqvist, Alvarado, Bancroft, Hallidie, Fong, Mahoney, "
    "Ortega, Pettibone, Quintana, Sanderling, Tamura, Steinhart, Corbett, Donahue, Everett, Fairbanks, "
    "Gallardo, Hoffman, Ishikawa",
    noun="Fog, Sequoia, Cable, Pelican, Redwood, Poppy, Cypress, Sourdough, Sealion, Gull, Streetcar, "
    "Mission, Presidio, Fern, Manzanita, Condor, Otter, Dune, Tidewater, Crab, Anchovy, Coyote, Quail, "
    "Madrone",
    adj="Foggy, Golden, Coastal, Hilltop, Breezy, Misty, Western, Pacific, Sunset, Painted, Victorian, Steep",
    categories={
        "bank": "Bank, Credit Union, Thrift",
        "restaurant": "Taqueria, Bistro, Kitchen, Dim Sum",
        "supermarket": "Market, Co-op, Produce",
        "bakery": "Bakery, Boulangerie, Panaderia",
        "cafe": "Cafe, Espresso, Tea House",
        "pharmacy": "Pharmacy, Remedies",
        "hospital": "Hospital, Clinic, Medical Group",
        "spa": "Spa, Hot Springs, Massage",
        "convenience_store": "Corner Market, Liquors, Mini Mart",
        "school": "School, Elementary, Institute",
        "library": "Reading Room, Book Exchange",
        "park": "Green, Gardens, Overlook",
        "lodging": "Motel, Lodge, Suites",
        "laundry": "Laundry, Wash Club, Suds",
        "movie_theater": "Cinema, Screening Room",
        "book_store": "Bookshop, Book Nook",
        "clothing_store": "Boutique, Threads, Vintage",
        "jewelry_store": "Jewelry, Gems",
        "gym": "Fitness, Climbing, Yoga",
        "bar": "Bar, Brewing, Lounge",
    },
    templates=("{adj} {noun} {cat}", "{noun} {cat}", "{surname} {cat}", "{given}'s {cat}", "{noun} & {noun}"),
    streets=("{surname} Way", "{noun} Alley", "{surname} Drive", "{noun} Terrace", "{given} {surname} Way"),
    avenues=("{surname} Boulevard", "{noun} Boulevard"),
    districts="Fogmere, Cablehill, Poppyvale, Sealion Flats, Cypress Hollow",
)

HONG_KONG = _pack(
    given="Wing, Lok, Fat, Hing, Kee, Tai, Shun, Fook, Yan, Hoi, Ming, Kwan, Sang, Tak, Lung, Wah, Yuen, "
    "Chun, Fung, Po, On, Sun, Mei, Kam, Cheong, Yick, Hang, Shing, Choi",
    surname="Chan, Wong, Leung, Cheung, Lau, Ho, Tsang, Yip, Kwok, Lam, Mak, Tang, Chow, Ng, Siu, Tse, "
    "Yeung, Poon, Chiu, Lai, Law, Tam",
    noun="Dragon, Phoenix, Jade, Lotus, Pearl, Harbour, Peak, Junk, Bamboo, Orchid, Crane, Tiger, Carp, "
    "Plum, Mango, Typhoon, Neon, Jasmine, Moon, Star, Cloud, Ginger, Lychee, Kumquat",
    adj="Golden, Prosperous, Happy, Double, Great, Eternal, Peaceful, Bright, New, Royal, Hundred, Thousand",
    categories={
        "bank": "Bank, Finance, Credit",
        "restaurant": "Tea Restaurant, Congee, Roast Meats, Seafood, Dim Sum",
        "supermarket": "Supermarket, Provisions, Mart",
        "bakery": "Bakery, Cake Shop, Bakery & Cafe",
        "cafe": "Cafe, Tea House, Dessert",
        "pharmacy": "Dispensary, Pharmacy, Herbal Medicine",
        "hospital": "Clinic, Hospital, Medical Centre",
        "spa": "Foot Massage, Spa, Massage",
        "convenience_store": "Store, Provisions Store, Mini Mart",
        "school": "College, School, Tutorial Centre",
        "library": "Reading Room, Study Hall",
        "park": "Garden, Rest Garden",
        "lodging": "Guesthouse, Hostel, Suites",
        "laundry": "Laundry, Dry Cleaning",
        "movie_theater": "Cinema, Picture House",
        "book_store": "Bookshop, Book Centre, Stationery",
        "clothing_store": "Fashion, Tailor, Boutique",
        "jewelry_store": "Jewellery, Goldsmith, Jade Shop",
        "gym": "Fitness, Martial Arts",
        "bar": "Bar, Karaoke, Wine Bar",
    },
    templates=("{given} {given} {cat}", "{adj} {noun} {cat}", "{surname} {given} {cat}", "{noun} {cat}"),
    streets=(
        "{given} {given} Lane",
        "{noun} Lane",
        "{surname} Path",
        "{given} {given} Terrace",
        "{adj} {noun} Path",
    ),
    avenues=("{given} {given} Road", "{noun} Road"),
    districts="Taiwah, Fookhing, Lokmei, Shunyan, Kamsang",
)

LAGOS = _pack(
    given="Adebayo, Chinedu, Folake, Ngozi, Emeka, Tunde, Kemi, Bisi, Segun, Uche, Amaka, Femi, Yetunde, "
    "Ifeoma, Bola, Chioma, Dayo, Gbenga, Ireti, Obinna, Sade, Tobi, Yemi, Zainab",
    surname="Adeyemi, Okafor, Balogun, Okonkwo, Adeleke, Eze, Ogunleye, Nwosu, Bello, Afolabi, Olawale, "
    "Nnamdi, Ibekwe, Oyelaran, Akande, Ojo, Babatunde, Okeke, Fashola, Adewale",
    noun="Grace, Unity, Victory, Favour, Glory, Blessing, Mercy, Faith, Harmony, Peace, Success, Treasure, "
    "Sunshine, Palm, Baobab, Oasis, Jubilee, Kingdom, Covenant, Excellence, Progress, Wisdom, Zion, "
    "Crystal, Lagoon, Eko",
    adj="Divine, Royal, Supreme, Golden, Premier, Everlasting, Heavenly, Bright, Evergreen, Great, "
    "Classic, Modern, Prime, Mega",
    categories={
        "bank": "Bank, Microfinance",
        "restaurant": "Kitchen, Buka, Eatery, Restaurant, Suya Spot",
        "supermarket": "Supermarket, Stores, Market",
        "bakery": "Bakery, Bread, Confectionery",
        "cafe": "Cafe, Lounge, Snacks",
        "pharmacy": "Pharmacy, Chemist, Pharmaceuticals",
        "hospital": "Hospital, Clinic, Medical Centre, Maternity",
        "spa": "Spa, Beauty Palace, Hair & Beauty",
        "convenience_store": "Provisions, Enterprises, Ventures",
        "school": "School, College, Nursery",
        "library": "Reading Centre, Study Centre",
        "park": "Garden, Gardens, Recreation Ground",
        "lodging": "Guest House, Suites, Lodge",
        "laundry": "Laundry, Dry Cleaning, Wash",
        "movie_theater": "Cinema, Film House",
        "book_store": "Bookshop, Book Centre, Stationery",
        "clothing_store": "Fashion, Tailoring, Fabrics, Boutique",
        "jewelry_store": "Jewellery, Gold, Beads",
        "gym": "Fitness, Gymnasium",
        "bar": "Bar, Lounge, Relaxation Spot",
    },
    templates=(
        "{surname} {cat}",
        "{adj} {noun} {cat}",
        "{noun} {cat}",
        "{given}'s {cat}",
        "{noun} & {noun} {cat}",
    ),
    streets=(
        "{surname} Close",
        "{noun} Crescent",
        "{given} Way",
        "{surname} Lane",
        "{adj} {noun} Close",
        "{given} {surname} Drive",
    ),
    avenues=("{surname} Road", "{surname} Way"),
    districts="Idunmota, Ekoville, Palmgrove, Baobab Estate, Oasis Layout",
    type_templates={"restaurant": ("Mama {given}'s {cat}", "{surname} {cat}", "{adj} {noun} {cat}")},
)

NEW_DELHI = _pack(
    given="Ravi, Priya, Anil, Sunita, Vikram, Meena, Arjun, Kavita, Rajesh, Pooja, Sanjay, Neha, Deepak, "
    "Anjali, Manoj, Rekha, Amit, Geeta, Rohit, Sapna",
    surname="Sharma, Gupta, Verma, Malhotra, Kapoor, Bansal, Arora, Sethi, Khanna, Chawla, Aggarwal, "
    "Bhatia, Mehra, Saxena, Tandon, Ahuja, Jain, Goyal, Narang, Oberoi",
    noun="Ganga, Kamal, Laxmi, Sagar, Moti, Himalaya, Ashoka, Jyoti, Sitara, Chandni, Kohinoor, Shanti, "
    "Anand, Prakash, Gulmohar, Amrit, Suraj, Tulsi, Kesar, Mahal, Durbar, Roshni, Mangal, Nilgiri",
    adj="Shree, Shri, New, Royal, Super, Deluxe, Modern, Classic, National, Bharat",
    categories={
        "bank": "Bank, Co-operative Bank, Finance",
        "restaurant": "Dhaba, Bhojanalaya, Restaurant, Rasoi",
        "supermarket": "Supermarket, Bazaar, Mart",
        "bakery": "Bakers, Sweets, Confectioners",
        "cafe": "Chai Point, Tea Stall, Cafe",
        "pharmacy": "Medicos, Chemists, Medical Store",
        "hospital": "Hospital, Nursing Home, Clinic, Polyclinic",
        "spa": "Spa, Beauty Parlour, Ayurveda",
        "convenience_store": "General Store, Kirana Store, Provision Store",
        "school": "Public School, Vidyalaya, Coaching Centre",
        "library": "Pustakalaya, Reading Room",
        "park": "Bagh, Vatika, Udyan",
        "lodging": "Guest House, Lodge, Dharamshala",
        "laundry": "Laundry, Dry Cleaning",
        "movie_theater": "Talkies, Cinema, Chitra Mandir",
        "book_store": "Book Depot, Pustak Bhandar",
        "clothing_store": "Sarees, Fashions, Tailors, Cloth House",
        "jewelry_store": "Jewellers, Gems, Swarn Kala",
        "gym": "Fitness, Akhara, Yoga Kendra",
        "bar": "Bar, Lounge, Beer Bar",
    },
    templates=("{adj} {noun} {cat}", "{noun} {cat}", "{surname} {cat}", "{surname} & Sons", "{given} {cat}"),
    streets=(
        "{noun} Gali",
        "{surname} Lane",
        "{noun} Road",
        "{given} Gali",
        "{given} {surname} Marg",
        "{adj} {noun} Lane",
    ),
    avenues=("{noun} Marg", "{surname} Marg"),
    districts="Amritnagar, Sagarpur, Kamalpuri, Ashokgarh, Gulmohar Vihar",
    vicinity="Shop {number}, {street}, {district}",
)

MILAN = _pack(
    given="Livia, Matteo, Giulia, Lorenzo, Chiara, Paolo, Ambrogio, Beatrice, Carlo, Dario, Elena, "
    "Federico, Gianna, Luca, Marta, Nicola, Ottavio, Renata, Silvio, Teresa",
    surname="Ostelli, Brambilla, Colombo, Galli, Ricci, Bianchi, Fumagalli, Sala, Cattaneo, Mariani, "
    "Pozzi, Villa, Monti, Longoni, Crippa, Mauri, Redaelli, Sironi, Tagliabue, Vergani",
    noun="Sole, Luna, Stella, Rosa, Naviglio, Nebbia, Duomo, Madonnina, Tram, Olivo, Castello, Fontana, "
    "Vigna, Torre, Ponte, Gelso, Lanterna, Risotto, Panettone, Campanile, Cortile, Loggia, Ginestra",
    adj="Bella, Vecchia, Nuova, Dolce, Piccola, Antica, Grande, Buona, Rossa, Dorata, Felice, Serena",
    categories={
        "bank": "Banca, Credito",
        "restaurant": "Trattoria, Osteria, Ristorante",
        "supermarket": "Supermercato, Mercato, Emporio",
        "bakery": "Panificio, Forno, Pasticceria",
        "cafe": "Caffe, Bar, Torrefazione",
        "pharmacy": "Farmacia",
        "hospital": "Ospedale, Clinica, Poliambulatorio",
        "spa": "Terme, Centro Benessere",
        "convenience_store": "Alimentari, Drogheria, Minimarket",
        "school": "Scuola, Liceo, Istituto",
        "library": "Biblioteca",
        "park": "Giardino, Parco, Giardini",
        "lodging": "Albergo, Locanda, Pensione",
        "laundry": "Lavanderia, Tintoria",
        "movie_theater": "Cinema, Cineteatro",
        "book_store": "Libreria",
        "clothing_store": "Moda, Sartoria, Boutique",
        "jewelry_store": "Gioielleria, Oreficeria",
        "gym": "Palestra",
        "bar": "Enoteca, Birreria, Bar",
    },
    templates=(
        "{cat} {surname}",
        "{cat} da {given}",
        "{cat} La {noun}",
        "{cat} {adj} {noun}",
        "{cat} {given}",
    ),
    streets=("Via {surname}", "Via {noun}", "Vicolo {noun}", "Corso {given}", "Via {given} {surname}"),
    avenues=("Viale {surname}", "Corso {surname}", "Bastioni {surname}"),
    districts="Navigliano, Castelnuovo, Torrebella, Pontevecchio, Gelsomino",
    vicinity="{street} {number}, {district}",
)

BUENOS_AIRES = _pack(
    given="Lucia, Mateo, Valentina, Santiago, Camila, Joaquin, Martina, Facundo, Florencia, Agustin, "
    "Rocio, Tomas, Julieta, Ignacio, Milagros, Nicolas, Sofia, Gonzalo, Belen, Emilio",
    surname="Fernandez, Gutierrez, Ramos, Sosa, Acosta, Benitez, Medina, Herrera, Aguirre, Pereyra, "
    "Gimenez, Molina, Castro, Ortiz, Rojas, Ledesma, Quiroga, Villalba, Zabala, Cabrera",
    noun="Espiga, Aurora, Esquina, Rio, Pampa, Tango, Malevo, Farol, Bandoneon, Ombu, Rosal, Alba, Cielo, "
    "Puerto, Gaucho, Mate, Jacaranda, Paloma, Estrella, Sol, Recova, Cabildo, Glorieta",
    adj="Nueva, Vieja, Dorada, Gran, Buena, Linda, Querida, Portena, Antigua, Blanca, Negra, Alegre",
    categories={
        "bank": "Banco, Caja, Financiera",
        "restaurant": "Parrilla, Bodegon, Restaurante, Cantina",
        "supermarket": "Supermercado, Autoservicio, Mercado",
        "bakery": "Panaderia, Confiteria, Facturas",
        "cafe": "Cafe, Cafeteria, Bar Notable",
        "pharmacy": "Farmacia, Drogueria",
        "hospital": "Hospital, Sanatorio, Clinica",
        "spa": "Spa, Centro de Estetica",
        "convenience_store": "Kiosco, Almacen, Despensa",
        "school": "Escuela, Colegio, Instituto",
        "library": "Biblioteca",
        "park": "Plaza, Plazoleta, Parque",
        "lodging": "Hostal, Posada, Residencial",
        "laundry": "Lavadero, Lavanderia, Tintoreria",
        "movie_theater": "Cine, Cinema",
        "book_store": "Libreria",
        "clothing_store": "Tienda, Moda, Indumentaria",
        "jewelry_store": "Joyeria, Relojeria",
        "gym": "Gimnasio, Club",
        "bar": "Bar, Cerveceria, Boliche",
    },
    templates=(
        "{cat} {surname}",
        "{cat} La {noun}",
        "{cat} El {noun}",
        "{cat} Don {given}",
        "{cat} {adj} {noun}",
    ),
    streets=(
        "Calle {surname}",
        "Pasaje {noun}",
        "Calle {noun}",
        "Calle {given} {surname}",
        "Pasaje {adj} {noun}",
    ),
    avenues=("Avenida {surname}", "Avenida {noun}"),
    districts="Farolito, Cabildia, Pampanueva, Puerto Alba, Villa Recova",
    vicinity="{street} {number}, {district}",
)

PACKS: dict[str, NamePack] = {
    "new_york": NEW_YORK,
    "milan": MILAN,
    "new_delhi": NEW_DELHI,
    "buenos_aires": BUENOS_AIRES,
    "london": LONDON,
    "hong_kong": HONG_KONG,
    "melbourne": MELBOURNE,
    "lagos": LAGOS,
    "san_francisco": SAN_FRANCISCO,
}
