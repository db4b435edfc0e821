"""Hook specifications of DID (pluggy project ``"did"``).

Every hook is a *collecting* hook: it receives a typed ``Registry`` and calls
``register.add(name, factory)`` once per thing it provides. Plugins are found
through the entry-point group ``did``; the core's own features are registered
the same way, from ``did_core.default_plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from did_core.registry import Registry

hookspec = pluggy.HookspecMarker("did")
hookimpl = pluggy.HookimplMarker("did")


@hookspec
def did_register_blocks(register: "Registry") -> None:
    """Register equilibrium blocks: name -> factory ``(**options) -> EquilibriumBlock``."""


@hookspec
def did_register_samplers(register: "Registry") -> None:
    """Register context samplers: name -> factory ``(**options) -> ContextSampler``."""


@hookspec
def did_register_generators(register: "Registry") -> None:
    """Register generator architectures: name -> factory ``(sampler, **options) -> nn.Module``."""


@hookspec
def did_register_losses(register: "Registry") -> None:
    """Register designer objectives (induced game, loss, metrics): name -> factory ``(**options) -> DesignObjective``."""


@hookspec
def did_register_concepts(register: "Registry") -> None:
    """Register equilibrium concepts: name -> ``did_core.concepts.Concept`` subclass (its constraint rows)."""


@hookspec
def did_register_tasks(register: "Registry") -> None:
    """Register design tasks: name -> ``did_core.tasks.Task`` (sampler, objective, generator, profiles, ...)."""


@hookspec
def did_register_mechanisms(register: "Registry") -> None:
    """Register mechanism-design tasks (no game is induced; the task brings its own train, eval and design):
    name -> ``did_core.mechanism_task.MechanismTask``. Names share one namespace with ``did_register_tasks``."""


@hookspec
def did_register_commands(register: "Registry") -> None:
    """Register ``did`` subcommands: name -> ``(argv: list[str]) -> int``, e.g. a ``did_core.console.Command``
    (``did deb``; the core's own commands are registered the same way, from ``did_core.commands``)."""


@hookspec
def did_register_policy_blocks(register: "Registry") -> None:
    """Register policy blocks (the optimal policy of an MDP, differentiable in its rewards): name -> factory
    ``(**options) -> did_core.policy.PolicyBlock``."""
