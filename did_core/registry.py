"""The typed registry handed to every ``did_register_*`` hook."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from did_core.files import shown

__all__ = ["Entry", "Registry", "UnknownNameError", "DuplicateNameError", "call_factory"]


class UnknownNameError(LookupError, ValueError):
    """A lookup of a name nobody registered (a bad value as much as a failed lookup); the message lists the
    known names."""


class DuplicateNameError(ValueError):
    """Two providers registered the same name; the message names both."""


@dataclass(frozen=True)
class Entry:
    """One registered thing: its name, value (a factory, a class or a description object) and provider."""

    name: str
    value: Any
    provider: str


class Registry:
    """Name -> value for one kind of thing (``"block"``, ``"sampler"``, ``"task"``, ...).

    ``add`` refuses a duplicate name (naming both providers; neither is used) and a value
    the kind does not accept (``accepts``, by default any callable: a factory); a name
    the ``owner`` registered stays the owner's, another provider's is refused. ``get``
    on an unknown name raises ``UnknownNameError`` listing what is known.
    """

    def __init__(self, kind: str, accepts: Callable[[Any], bool] = callable, expected: str = "callable",
                 owner: str | None = None) -> None:
        self.kind = kind
        #: A provider whose names no other can take (``did`` commands: the core's own); see :meth:`add`.
        self.owner = owner
        self._accepts, self._expected = accepts, expected
        self._conflicts: dict[str, list[str]] = {}
        #: Appended to unknown-name errors (e.g. that ``DID_LOAD_PLUGINS`` restricts what loaded).
        self.hint = ""
        self._entries: dict[str, Entry] = {}
        self._provider = "unknown"

    def providing(self, provider: str) -> "Registry":
        """Attribute the following ``add`` calls to ``provider`` (a distribution name)."""
        self._provider = provider
        return self

    def add(self, name: str, value: Any) -> None:
        """Register ``value`` under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if not self._accepts(value):
            raise ValueError(f"{self.kind} {name!r} from {self._provider}: {value!r} is not {self._expected}")
        held = self._entries.get(name)
        if held is not None and self.owner is not None and held.provider == self.owner != self._provider:
            raise DuplicateNameError(f"{self.kind} {name!r} of {self._provider} is not registered: the name is "
                                     f"{self.owner}'s own (rename it)")
        if name in self._entries or name in self._conflicts:
            # Neither provider wins (load order is no reason to trust one): the name is unusable until resolved.
            providers = self._conflicts.setdefault(name, [self._entries.pop(name).provider] if name in self._entries
                                                   else [])
            providers.append(self._provider)
            raise DuplicateNameError(f"{self.kind} {name!r} is registered twice: by {' and by '.join(providers)}; "
                                     f"neither is used until one is uninstalled or left out with DID_LOAD_PLUGINS")
        self._entries[name] = Entry(name, value, self._provider)

    def withdraw(self, name: str, providers: list[str]) -> None:
        """Make ``name`` unusable as a duplicate is (``get`` names ``providers``): for a name two registries share."""
        self._entries.pop(name, None)
        self._conflicts[name] = providers

    def get(self, name: str) -> Entry:
        """The entry named ``name``."""
        if name in self._conflicts:
            raise DuplicateNameError(f"{self.kind} {name!r} is registered by {' and by '.join(self._conflicts[name])}; "
                                     f"it is not used until one is uninstalled or left out with DID_LOAD_PLUGINS")
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {shown(name)}; known: {known}{self.hint}") from None

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        """Look up ``name`` and call its factory; options its signature cannot take are a ``ValueError``."""
        return call_factory(f"{self.kind} {name!r}", self.get(name).value, *args, **options)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)


def call_factory(label: str, factory: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """``factory(*args, **options)``; options its signature cannot take are a ``ValueError`` naming ``label``."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        signature = None
    if signature is not None:
        try:
            signature.bind(*args, **options)
        except TypeError as exc:
            raise ValueError(f"invalid options for {label}: {exc}") from None
    return factory(*args, **options)
