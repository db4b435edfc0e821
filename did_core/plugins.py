"""The plugin manager: built-ins from ``did_core.default_plugins`` plus the entry-point group ``did``; and the
look-ups that turn a name into an object (a concept, a task, a component factory, the preferred exact block).

Names become objects here, at the edge (the command line, a config, plugin loading), and nowhere below:
the mathematics takes :class:`~did_core.concepts.Concept` objects.

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
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from did_core import hookspecs
from did_core.blocks import capabilities_of
from did_core.concepts import Concept
from did_core.default_plugins import DEFAULT_PLUGINS
from did_core.default_plugins.concepts import DEFAULT_CONCEPT
from did_core.mechanism_task import MechanismTask
from did_core.policy import PolicyBlock
from did_core.registry import Registry, UnknownNameError, call_factory
from did_core.tasks import Task

__all__ = ["KINDS", "LoadedPlugin", "PluginState", "load_plugins", "registry", "create", "exact_block_for",
           "exact_block_named", "get_concept", "concept_names", "DEFAULT_CONCEPT", "get_task", "get_mechanism",
           "get_policy_block", "component_factory"]

#: hook suffix -> the singular noun used in messages.
KINDS: dict[str, str] = {
    "blocks": "block", "samplers": "sampler", "generators": "generator", "losses": "loss", "concepts": "concept",
    "tasks": "task", "mechanisms": "mechanism task", "policy_blocks": "policy block", "commands": "command",
}


CORE_DISTRIBUTION = "did-core"


def _new_registry(kind: str) -> Registry:
    """An empty registry of ``kind``; concepts and tasks accept only their own types, and the core's commands
    keep their names (a plugin cannot take ``did train`` from under torchrun)."""
    if kind == "concepts":
        return Registry("concept", lambda v: isinstance(v, type) and issubclass(v, Concept),
                        "a did_core.concepts.Concept subclass")
    if kind == "tasks":
        return Registry("task", lambda v: isinstance(v, Task), "a did_core.tasks.Task (a MechanismTask registers "
                        "through did_register_mechanisms)")
    if kind == "mechanisms":
        return Registry("mechanism task", lambda v: isinstance(v, MechanismTask),
                        "a did_core.mechanism_task.MechanismTask")
    if kind == "commands":
        return Registry("command", owner=CORE_DISTRIBUTION)
    return Registry(KINDS[kind])


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
    providers = _load_defaults(pm, state)
    allowed = _allowed()
    entry_points = sorted(metadata.entry_points(group="did"), key=lambda e: e.name)
    for ep in entry_points:
        if allowed is None or _names(ep) & allowed:
            _load_entry_point(pm, state, ep, providers)
    _fill_registries(pm, state, providers)
    _one_task_namespace(state)
    if allowed is not None:
        _restricted(state, allowed, entry_points)
    _STATE = state
    for error in state.errors:
        print(f"did: warning: plugin error: {error}", file=sys.stderr)
    return state


def _load_defaults(pm: pluggy.PluginManager, state: PluginState) -> dict[str, str]:
    """Register the core's own plugin modules (:data:`DEFAULT_PLUGINS`); plugin name -> provider."""
    core_version = _version(CORE_DISTRIBUTION)
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        _register(pm, state, module, module_name, CORE_DISTRIBUTION, core_version)
    return {module_name: CORE_DISTRIBUTION for module_name in DEFAULT_PLUGINS}


def _load_entry_point(pm: pluggy.PluginManager, state: PluginState, ep: metadata.EntryPoint,
                      providers: dict[str, str]) -> None:
    """Import and register one installed plugin; a name already taken or a failed import is recorded, not raised."""
    dist = ep.dist.name if ep.dist is not None else ep.value
    if pm.has_plugin(ep.name):
        state.errors.append(f"{dist} ({ep.name}): the entry-point name {ep.name!r} is already taken by "
                            f"{providers.get(ep.name, 'another plugin')}; not loaded (rename the entry point)")
        return
    try:
        module = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a broken plugin (even one calling sys.exit) is reported
        state.errors.append(f"{dist} ({ep.name}): failed to import {ep.value}: {type(exc).__name__}: {exc}")
        return
    _register(pm, state, module, ep.name, dist, ep.dist.version if ep.dist is not None else "?")
    providers[ep.name] = dist


def _fill_registries(pm: pluggy.PluginManager, state: PluginState, providers: dict[str, str]) -> None:
    """Call every plugin's ``did_register_*`` hooks with the registry of that kind, attributed to the plugin."""
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


def _one_task_namespace(state: PluginState) -> None:
    """A name registered both as a game task and as a mechanism task is an error and neither is used
    (``did train --task NAME`` must mean one thing)."""
    tasks, mechanisms = state.registries["tasks"], state.registries["mechanisms"]
    for name in sorted(set(tasks.names()) & set(mechanisms.names())):
        providers = [f"{tasks.get(name).provider} (game task)", f"{mechanisms.get(name).provider} (mechanism task)"]
        tasks.withdraw(name, providers)
        mechanisms.withdraw(name, providers)
        state.errors.append(f"task {name!r} is registered by {' and by '.join(providers)}; neither is used until "
                            f"one is uninstalled or left out with DID_LOAD_PLUGINS")


def _restricted(state: PluginState, allowed: set[str], entry_points: list[metadata.EntryPoint]) -> None:
    """Under ``DID_LOAD_PLUGINS``: report names no installed plugin has, and say so in unknown-name errors."""
    installed = set().union(*(_names(ep) for ep in entry_points)) if entry_points else set()
    unknown = sorted(allowed - installed)
    if unknown:
        state.errors.append(f"DID_LOAD_PLUGINS names {', '.join(unknown)}, which no installed plugin is called "
                            f"(installed: {', '.join(sorted(ep.name for ep in entry_points)) or 'none'})")
    for reg in state.registries.values():
        reg.hint = f" (DID_LOAD_PLUGINS={os.environ['DID_LOAD_PLUGINS']!r} restricts which plugins load)"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def registry(kind: str) -> Registry:
    """The registry of one kind: ``"blocks"``, ``"samplers"``, ``"generators"``, ``"losses"``, ``"concepts"``,
    ``"tasks"``, ``"mechanisms"``, ``"policy_blocks"`` or ``"commands"``."""
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
    declared = [(capabilities_of(entry.value), entry.name) for entry in registry("blocks")]
    candidates = [(caps.preference, name) for caps, name in declared if caps.exact and caps.supports(concept)]
    if not candidates:
        raise ValueError(f"no installed exact block supports concept {concept!r} "
                         f"(install did-plugins-exact-cvx, or name a block with --block)")
    return min(candidates, key=lambda c: (-c[0], c[1]))[1]


def exact_block_named(name: str, concept: str, flag: str) -> str:
    """``name`` when it is a registered block whose capabilities say exact and support ``concept``.

    Where an exact block is required (the guard and evaluation of a run, ``did design``'s
    block), a learned block or one without the concept is a one-line ``ValueError`` naming
    ``flag`` and the exact blocks installed for the concept; an unknown name lists the known ones.
    """
    capabilities = capabilities_of(registry("blocks").get(name).value)
    if capabilities.exact and capabilities.supports(concept):
        return name
    exact = [entry.name for entry in registry("blocks")
             if capabilities_of(entry.value).exact and capabilities_of(entry.value).supports(concept)]
    why = ("is not an exact block (it approximates the equilibrium)" if not capabilities.exact
           else f"does not support concept {concept!r}")
    raise ValueError(f"{flag} {name!r} {why}, and an exact block is needed there; exact blocks installed for "
                     f"{concept}: {', '.join(exact) or 'none (install did-plugins-exact-cvx)'}")


def get_concept(concept: "str | Concept", options: Mapping[str, Any] | None = None) -> Concept:
    """The registered concept named ``concept`` with ``options`` (validated by the concept: a wrong one is a
    one-line ``ValueError``); a ``Concept`` is returned as it is (it has its options already).

    Unknown names raise ``UnknownNameError`` (a ``LookupError``) listing the known ones.
    """
    if isinstance(concept, Concept):
        if options:
            raise ValueError(f"options {dict(options)!r} given for the concept object {concept!r}, which has its "
                             f"options already")
        return concept
    concepts = registry("concepts")
    name = str(concept)
    entry = concepts.get(name if name in concepts else name.lower())
    made = call_factory(f"concept {entry.name!r}", entry.value, **dict(options or {}))
    if not isinstance(made, Concept):
        raise TypeError(f"concept {name!r} from {entry.provider} is not a did_core.concepts.Concept")
    return made


def concept_names() -> list[str]:
    """The names of every registered concept."""
    return registry("concepts").names()


def get_task(name: str) -> Task:
    """The game task registered as ``name`` (a mechanism task's name: an error saying which commands it has)."""
    if get_mechanism(name) is not None:
        raise UnknownNameError(f"task {name!r} designs a mechanism, not a game's payoffs: use it with did train "
                               f"--task {name}, did eval and did design {name}")
    try:
        return registry("tasks").get(name).value
    except UnknownNameError as exc:
        mechanisms = registry("mechanisms").names()
        raise UnknownNameError(f"{exc}; mechanism tasks: {', '.join(mechanisms)}" if mechanisms else str(exc)) from None


def get_mechanism(name: object) -> MechanismTask | None:
    """The mechanism task registered as ``name``; ``None`` when ``name`` is none (a game task, or unknown)."""
    mechanisms = registry("mechanisms")
    return mechanisms.get(name).value if isinstance(name, str) and name in mechanisms else None


#: registry kind -> the ``Task`` field holding that kind of component.
_TASK_FIELDS = {"samplers": "sampler", "losses": "objective", "generators": "generator"}


def component_factory(kind: str, name: str) -> Callable[..., Any]:
    """The factory of component ``name`` of ``kind`` (``"samplers"``, ``"losses"``, ``"generators"``).

    A component registered on its own under ``name`` wins; else the component of the task
    ``name`` (so ``--sampler scheduling`` takes the scheduling task's sampler).
    """
    own, tasks = registry(kind), registry("tasks")
    if name in own:
        return own.get(name).value
    if name in tasks:
        return getattr(tasks.get(name).value, _TASK_FIELDS[kind])
    known = ", ".join(sorted(set(own.names()) | set(tasks.names()))) or "none"
    raise UnknownNameError(f"unknown {own.kind} {name!r}; known: {known}")


def get_policy_block(name: str, **options: Any) -> PolicyBlock:
    """The policy block registered as ``name``, built with ``options`` (an unknown name lists the known ones)."""
    block = create("policy_blocks", name, **options)
    if not isinstance(block, PolicyBlock):
        raise TypeError(f"policy block {name!r} is not a did_core.policy.PolicyBlock")
    return block
