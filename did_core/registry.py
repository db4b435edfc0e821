"""The typed registry handed to every ``did_register_*`` hook."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "Registry", "UnknownNameError", "DuplicateNameError"]


class UnknownNameError(LookupError):
    """A lookup of a name nobody registered; the message lists the known names."""


class DuplicateNameError(ValueError):
    """Two providers registered the same name; the message names both."""


@dataclass(frozen=True)
class Entry:
    """One registered thing: its name, factory and the distribution that provides it."""

    name: str
    factory: Callable[..., Any]
    provider: str


class Registry:
    """Name -> factory for one kind of thing (``"block"``, ``"sampler"``, ...).

    ``add`` refuses a duplicate name, naming both providers; ``get`` on an
    unknown name raises ``UnknownNameError`` listing what is known.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._provider = "unknown"

    def providing(self, provider: str) -> "Registry":
        """Attribute the following ``add`` calls to ``provider`` (a distribution name)."""
        self._provider = provider
        return self

    def add(self, name: str, factory: Callable[..., Any]) -> None:
        """Register ``factory`` under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise ValueError(f"{self.kind} {name!r} from {self._provider}: factory is not callable")
        if name in self._entries:
            first = self._entries[name].provider
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by {first} and by {self._provider}"
            )
        self._entries[name] = Entry(name, factory, self._provider)

    def get(self, name: str) -> Entry:
        """The entry named ``name``."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        """Look up ``name`` and call its factory; options its signature cannot take are a ``ValueError``."""
        factory = self.get(name).factory
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # no introspectable signature: let the call decide
            signature = None
        if signature is not None:
            try:
                signature.bind(*args, **options)
            except TypeError as exc:
                raise ValueError(f"invalid options for {self.kind} {name!r}: {exc}") from None
        return factory(*args, **options)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)
