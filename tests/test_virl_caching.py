"""The caches behind V-IRL's renderer and panorama store: LRU budgets, identity keys, per-object values."""

from __future__ import annotations

import gc
import weakref

from shiftlab.tasks.virl.caching import LRU, IdentityKey, per_object


class _Thing:
    """Equal to every other _Thing, as a frozen dataclass of equal fields would be."""

    def __eq__(self, other):
        return isinstance(other, _Thing)

    def __hash__(self):
        return 0


def test_lru_evicts_the_least_recently_used():
    cache = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the oldest
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.put("a", 4)  # replacing a value costs nothing extra
    assert (cache.get("a"), cache.get("c")) == (4, 3)
    cache.clear()
    assert cache.get("a") is None


def test_lru_budget_by_cost():
    cache = LRU(10, cost=len)
    cache.put("a", "xxxx")
    cache.put("b", "xxxx")
    cache.put("c", "xxxx")  # 12 > 10: "a" goes
    assert [cache.get(k) is not None for k in "abc"] == [False, True, True]
    cache.put("d", "x" * 50)  # alone over budget: it stays, everything older goes
    assert [cache.get(k) is not None for k in "bcd"] == [False, False, True]
    nothing = LRU(0)
    nothing.put("a", 1)
    assert nothing.get("a") is None


def test_identity_keys_compare_objects_by_identity_while_they_live():
    one, other = _Thing(), _Thing()
    assert one == other
    assert IdentityKey(one) == IdentityKey(one)
    assert IdentityKey(one) != IdentityKey(other)
    key = IdentityKey(one)
    del one
    gc.collect()
    assert key.__eq__(key) is False  # a dict still finds the very same key object, by identity
    cache = LRU(4)
    cache.put((IdentityKey(other), 1), "value")
    assert cache.get((IdentityKey(other), 1)) == "value"
    assert cache.get((IdentityKey(_Thing()), 1)) is None


def test_per_object_computes_once_per_object_and_forgets_collected_ones():
    calls = []

    @per_object
    def derived(obj):
        calls.append(id(obj))
        return _Thing()

    one, other = _Thing(), _Thing()
    first = derived(one)
    assert derived(one) is first and derived(other) is not first and len(calls) == 2
    derived.cache_clear()
    assert derived(one) is not first and len(calls) == 3
    watched, value = weakref.ref(one), weakref.ref(derived(one))
    del one, first
    gc.collect()
    assert watched() is None and value() is None  # the cache kept neither the object nor its value
    assert derived(other) is derived(other) and len(calls) == 4
