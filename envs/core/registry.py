"""Named registries for observation builders, reward terms and baselines."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """Return a ``did you mean`` hint listing the closest of ``choices`` to ``name``."""
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


class Registry(Generic[T]):
    """A name -> object table whose errors name the field and the allowed values.

    Args:
        kind: what the registry holds, used in error messages (``"observation"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as a decorator when ``item`` is omitted."""

        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        if item is None:
            return add
        return add(item)

    def get(self, name: str, field: str | None = None) -> T:
        """Return the object registered under ``name`` or raise a ``KeyError`` with suggestions.

        Args:
            name: the registered name.
            field: the argument ``name`` was given as, which the error then starts with
                (``observation: unknown observation 'x'; allowed values: [...]``).
        """
        try:
            return self._items[name]
        except KeyError:
            allowed = sorted(self._items)
            where = f"{field}: " if field else ""
            raise KeyError(
                f"{where}unknown {self.kind} {name!r}; allowed values: {allowed}."
                f"{suggest(name, allowed)}"
            ) from None

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
