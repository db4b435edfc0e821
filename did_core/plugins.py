"""The plugin manager: built-ins from ``did_core.default_plugins`` plus the entry-point group ``did``.

``load_plugins()`` is idempotent. A plugin that fails to import, implements an
unknown hook, raises inside a hook or registers a duplicate name is recorded in
``PluginState.errors`` (shown by ``did plugins`` and warned about on stderr) and
never takes the others down. ``DID_LOAD_PLUGINS=a,b`` restricts which installed
plugins load, matched against entry-point or distribution names (empty: none).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from did_core import hookspecs
from did_core.registry import Registry

__all__ = ["KINDS", "LoadedPlugin", "PluginState", "load_plugins", "registry", "create", "exact_block_for"]

#: hook suffix -> the singular noun used in messages.
KINDS: dict[str, str] = {
    "blocks": "block", "samplers": "sampler", "generators": "generator", "losses": "loss", "concepts": "concept",
    "tasks": "task", "commands": "command",
}


def _new_registry(kind: str) -> Registry:
    """An empty registry of ``kind``; concepts and tasks accept only their own types."""
    if kind == "concepts":
        from did_core.concepts import Concept

        return Registry("concept", lambda v: isinstance(v, type) and issubclass(v, Concept),
                        "a did_core.concepts.Concept subclass")
    if kind == "tasks":
        from did_core.tasks import Task

        return Registry("task", lambda v: isinstance(v, Task), "a did_core.tasks.Task")
    return Registry(KINDS[kind])

CORE_DISTRIBUTION = "did-core"


@dataclass
class LoadedPlugin:
    """A plugin module that loaded, with its distribution and the hooks it implements."""

    name: str
    distribution: str
    version: str
    hooks: list[str]


@dataclass
class PluginState:
    """Everything ``load_plugins`` found."""

    registries: dict[str, Registry]
    plugins: list[LoadedPlugin] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_STATE: PluginState | None = None


def _allowed() -> set[str] | None:
    """The plugin names ``DID_LOAD_PLUGINS`` lets load (``None``: the variable is unset, every plugin loads)."""
    allowed = os.environ.get("DID_LOAD_PLUGINS")
    return None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}


def _names(entry_point: metadata.EntryPoint) -> set[str]:
    """The names ``DID_LOAD_PLUGINS`` may use for an entry point: its own and its distribution's."""
    return {entry_point.name} | ({entry_point.dist.name} if entry_point.dist is not None else set())


def _unknown_hooks(module: Any) -> list[str]:
    known = {f"did_register_{k}" for k in KINDS}
    return sorted(n for n in dir(module) if n.startswith("did_") and n not in known and callable(getattr(module, n)))


def _register(pm: pluggy.PluginManager, state: PluginState, module: ModuleType, name: str,
              dist: str, version: str) -> None:
    unknown = _unknown_hooks(module)
    if unknown:
        state.errors.append(f"{dist} ({name}): unknown hook implementation(s) {', '.join(unknown)}; plugin not loaded")
        return
    try:
        pm.register(module, name=name)
    except pluggy.PluginValidationError as exc:  # e.g. a hook implementation with the wrong arguments
        state.errors.append(f"{dist} ({name}): {' '.join(str(exc).split())}; plugin not loaded")
        return
    hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
    state.plugins.append(LoadedPlugin(name, dist, version, hooks))


def load_plugins(force: bool = False) -> PluginState:
    """Load built-in and installed plugins once and fill one registry per kind."""
    global _STATE
    if _STATE is not None and not force:
        return _STATE
    pm = pluggy.PluginManager("did")
    pm.add_hookspecs(hookspecs)
    state = PluginState(registries={k: _new_registry(k) for k in KINDS})
    providers: dict[str, str] = {}

    from did_core.default_plugins import DEFAULT_PLUGINS

    core_version = _version(CORE_DISTRIBUTION)
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        _register(pm, state, module, module_name, CORE_DISTRIBUTION, core_version)
        providers[module_name] = CORE_DISTRIBUTION

    allowed = _allowed()
    entry_points = sorted(metadata.entry_points(group="did"), key=lambda e: e.name)
    for ep in entry_points:
        if allowed is not None and not _names(ep) & allowed:
            continue
        dist = ep.dist.name if ep.dist is not None else ep.value
        if pm.has_plugin(ep.name):
            state.errors.append(f"{dist} ({ep.name}): the entry-point name {ep.name!r} is already taken by "
                                f"{providers.get(ep.name, 'another plugin')}; not loaded (rename the entry point)")
            continue
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a broken plugin (even one calling sys.exit) is reported
            state.errors.append(f"{dist} ({ep.name}): failed to import {ep.value}: {type(exc).__name__}: {exc}")
            continue
        _register(pm, state, module, ep.name, dist, ep.dist.version if ep.dist is not None else "?")
        providers[ep.name] = dist

    for kind, reg in state.registries.items():
        caller = getattr(pm.hook, f"did_register_{kind}")
        for impl in caller.get_hookimpls():
            provider = providers.get(impl.plugin_name, impl.plugin_name)
            try:
                impl.function(register=reg.providing(provider))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - attribute the failure (even sys.exit) to its plugin
                state.errors.append(f"{provider} ({impl.plugin_name}): did_register_{kind} failed: "
                                    f"{type(exc).__name__}: {exc}")
    if allowed is not None:
        installed = set().union(*(_names(ep) for ep in entry_points)) if entry_points else set()
        unknown = sorted(allowed - installed)
        if unknown:
            state.errors.append(f"DID_LOAD_PLUGINS names {', '.join(unknown)}, which no installed plugin is called "
                                f"(installed: {', '.join(sorted(ep.name for ep in entry_points)) or 'none'})")
        for reg in state.registries.values():
            reg.hint = f" (DID_LOAD_PLUGINS={os.environ['DID_LOAD_PLUGINS']!r} restricts which plugins load)"
    _STATE = state
    for error in state.errors:
        print(f"did: warning: plugin error: {error}", file=sys.stderr)
    return state


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def registry(kind: str) -> Registry:
    """The registry of one kind: ``"blocks"``, ``"samplers"``, ``"generators"``, ``"losses"``, ``"concepts"``,
    ``"tasks"`` or ``"commands"``."""
    if kind not in KINDS:
        raise ValueError(f"unknown registry {kind!r}; known: {', '.join(KINDS)}")
    return load_plugins().registries[kind]


def create(kind: str, name: str, *args: Any, **options: Any) -> Any:
    """Build the ``kind`` registered as ``name`` (e.g. ``create("blocks", exact_block_for(DEFAULT_CONCEPT))``)."""
    return registry(kind).create(name, *args, **options)


def exact_block_for(concept: str) -> str:
    """The name of the preferred exact block that supports ``concept`` (by declared capabilities, never by name).

    Among registered blocks whose ``capabilities`` say exact and list the concept (or
    any concept), the one with the highest ``preference``; ties go to the first name.
    """
    from did_core.blocks import capabilities_of

    declared = [(capabilities_of(entry.value), entry.name) for entry in registry("blocks")]
    candidates = [(caps.preference, name) for caps, name in declared if caps.exact and caps.supports(concept)]
    if not candidates:
        raise ValueError(f"no installed exact block supports concept {concept!r} "
                         f"(install did-plugins-exact-cvx, or name a block with --block)")
    return min(candidates, key=lambda c: (-c[0], c[1]))[1]
