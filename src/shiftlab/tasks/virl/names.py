"""Shop and street names of the procedural cities, from per-city lexicon packs.

Each city has its own pack of given names, surnames, nouns, adjectives, category words per place type
and templates (data/names.json). The packs of the out-of-distribution cities share no word with New
York's, so a model trained on New York meets new names as well as new pixels (lexical shift, virl.md §3.5).

Names obey the rules that keep `milestone_info` parseable and signs drawable: ASCII letters, digits,
space and `&.'-` only, no leading/trailing quote or apostrophe, no words the task reads as structure
("intersection", "destination", "No landmark", " is on your "), at most 28 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shiftlab.tasks.virl.tables import read_table

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


def _pack(city: str, categories: Mapping[str, tuple[str, ...]], **words) -> NamePack:
    """A pack from its table entry; checked here, since a place type without words fails only mid-build."""
    missing = set(PLACE_TYPES) - set(categories)
    if missing:
        raise ValueError(f"the {city} name pack lacks category words for {sorted(missing)}")
    return NamePack(categories=categories, **words)


# One pack per city, in the order of the city table.
PACKS: dict[str, NamePack] = {city: _pack(city, **entry) for city, entry in read_table("names.json").items()}
