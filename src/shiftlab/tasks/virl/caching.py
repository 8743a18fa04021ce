"""The caches of V-IRL's renderer and panorama store, where `functools.lru_cache` does not fit.

A Scene is a frozen dataclass of thousands of facades: hashing it by value costs more than the rendering a
cache saves, so what is cached per scene is keyed by the scene's identity, and weakly, so that no cache
keeps a scene alive.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
V = TypeVar("V")


class LRU:
    """A thread-safe least-recently-used cache whose values' costs (1 each by default) sum to at most
    `budget`; the newest value stays even when it alone costs more, and a budget of 0 stores nothing."""

    def __init__(self, budget: int, cost: Callable[[Any], int] | None = None) -> None:
        self.budget = budget
        self._cost = cost
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value stored under `key`, or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any) -> None:
        if self.budget <= 0:
            return
        cost = 1 if self._cost is None else self._cost(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._items[key] = (value, cost)
            self._total += cost
            while len(self._items) > 1 and self._total > self.budget:
                self._total -= self._items.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0


class IdentityKey:
    """An object's stand-in in a cache key: equal only to keys of the same object, and only while it lives."""

    __slots__ = ("_ref", "_hash")

    def __init__(self, obj: object) -> None:
        self._ref = weakref.ref(obj)
        self._hash = id(obj)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdentityKey):
            return NotImplemented
        obj = self._ref()
        return obj is not None and obj is other._ref()


def per_object(make: Callable[[T], V]) -> Callable[[T], V]:
    """`make(obj)` computed once per object, found by identity and dropped when the object is collected.

    The wrapper's `cache_clear()` forgets every value, as `functools.lru_cache`'s does.
    """
    values: dict[int, tuple[weakref.ref, V]] = {}
    lock = threading.Lock()

    @functools.wraps(make)
    def cached(obj: T) -> V:
        key = id(obj)
        entry = values.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        value = make(obj)
        with lock:
            values[key] = (weakref.ref(obj), value)
        weakref.finalize(obj, values.pop, key, None)
        return value

    def cache_clear() -> None:
        with lock:
            values.clear()

    cached.cache_clear = cache_clear  # type: ignore[attr-defined]
    return cached
