"""Kinds of a thing chosen by name: inference backends, live outputs (sinks), rain kinds.

Each is a table of name -> ``"module:attribute"``, loaded on first use. A new kind is its own file (or
function) plus one line in its table; the module that holds a table imports none of its kinds, so there is
no import circle, and a runtime that is not installed costs nothing until it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Generic, TypeVar

from vidderain.errors import VidderainError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, entries: dict[str, str]) -> None:
        self.what = what  # for errors: "backend", "output", "rain kind"
        self.entries = dict(entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def load(self, name: str) -> T:
        if name not in self.entries:
            raise VidderainError(f"unknown {self.what} '{name}' (known: {', '.join(self.entries)})")
        module, _, attribute = self.entries[name].partition(":")
        return getattr(import_module(module), attribute)
