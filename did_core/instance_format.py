"""How a task reads one problem instance from a file and shows what ``did design`` computes for it.

A task offers ``did design TASK FILE`` by setting ``Task.instances`` to an
:class:`InstanceFormat`: how its files are read (into a context of one), how an
intervention is optimised for one instance (optional), and how interventions
and joints are shown with the instance's own names. A file's names travel with
its context as a :class:`NamedContext`; a context not read from a file gets
numbered names (:meth:`InstanceFormat.names`).

Shapes: a context is a batch of one (every tensor ``[1, ...]``); an intervention
``[1, ...]`` as a generator returns it; a joint ``[A_1..A_N]`` cut to the real actions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.console import format_joint
from did_core.equilibria import Epsilon
from did_core.files import shown
from did_core.instance_files import InstanceError

if TYPE_CHECKING:
    from did_core.blocks import EquilibriumBlock

__all__ = ["InstanceFormat", "NamedContext", "Optimiser", "numbered"]

Context = dict[str, Tensor]

#: A per-instance optimisation: ``(context, block, concept, eps, steps, lr) -> intervention [1, ...]``.
Optimiser = Callable[[Context, "EquilibriumBlock", Concept, Epsilon, int, float], Tensor]


class NamedContext(dict):
    """A context of one read from an instance file (``dict[str, Tensor]``, every tensor ``[1, ...]``) that keeps
    the names the file gives: ``players[p]`` and each player's ``actions[p][a]``.

    Names must tell players (and one player's actions) apart, however a format gathers
    them (e.g. a leader's name and the followers' from two fields): a name given twice is
    an :class:`~did_core.instance_files.InstanceError`.
    """

    def __init__(self, context: Context, players: Sequence[str], actions: Sequence[Sequence[str]]) -> None:
        super().__init__(context)
        self.players = list(players)
        self.actions = [list(a) for a in actions]
        _distinct(self.players, "players")
        for name, own in zip(self.players, self.actions):
            _distinct(own, f"the actions of {shown(name)}")


def _distinct(names: list[str], what: str) -> None:
    """Refuse a list of names with one given twice, naming it."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InstanceError(f"{what} must have distinct names: {shown(name)} is given twice")
        seen.add(name)


def numbered(word: str, count: int) -> list[str]:
    """``["word 1", ..., "word count"]``: names for what a file did not name."""
    return [f"{word} {i + 1}" for i in range(count)]


class InstanceFormat(ABC):
    """How ``did design`` reads one instance of a task and shows what it computes.

    The class attributes name things in the printed report: ``noun`` the
    intervention (e.g. "contracts"), ``baseline`` the objective's baseline
    intervention (e.g. "no contract"), ``value_name`` the objective's value (e.g.
    "principal's utility"), ``method`` how :meth:`optimise` works; ``player_word`` and
    ``action_word`` number the players and actions of a context no file named.
    ``optimiser``, when set, is the task's per-instance optimisation (an
    :data:`Optimiser`, declared as ``optimiser = staticmethod(function)``); ``takes_start``
    says it also accepts ``start=``, an intervention to search from (e.g. a generator's
    output), so that ``did design`` refines a generator's answer rather than replacing it.
    ``example``, when set, is an instance file the plugin ships (package data): the
    contract-test kit (:mod:`did_core.plugin_checks`) reads it and runs ``did design`` on it.
    """

    noun: ClassVar[str] = "intervention"
    baseline: ClassVar[str] = "baseline intervention"
    value_name: ClassVar[str] = "value"
    method: ClassVar[str] = "per-instance optimisation"
    player_word: ClassVar[str] = "player"
    action_word: ClassVar[str] = "action"
    optimiser: ClassVar[Optimiser | None] = None
    takes_start: ClassVar[bool] = False
    example: ClassVar[Path | None] = None

    @abstractmethod
    def load(self, path: Path) -> Context:
        """The instance in ``path`` as a batch of one context (every tensor ``[1, ...]``).

        Malformed input raises ``ValueError`` with a one-line message naming the problem.
        """

    def optimise(self, context: Context, block: "EquilibriumBlock", concept: Concept, eps: Epsilon,
                 steps: int, lr: float, start: Tensor | None = None) -> Tensor | None:
        """An intervention ``[B, ...]`` optimised for ``context`` through ``block`` (``steps`` steps of rate ``lr``),
        also from ``start [B, ...]`` where the optimiser ``takes_start``.

        The ``optimiser``'s answer; ``None`` when the task has none (then ``did design`` needs a generator:
        ``--generator RUN`` or one the task ships).
        """
        optimiser = type(self).optimiser
        if optimiser is None:
            return None
        extra = {"start": start} if start is not None and self.takes_start else {}
        return optimiser(context, block, concept, eps, steps, lr, **extra)

    def describe_budget(self, context: Context, steps: int, start: Tensor | None = None) -> str | None:
        """What :meth:`optimise` spends on ``context`` with ``steps`` steps, in one line (printed by ``did design``
        and the per-instance benchmark); default ``None``: not described."""
        return None

    def solves_per_step(self, context: Context, start: bool = False) -> int:
        """How many copies of the instance one step of :meth:`optimise` solves together (a multi-start search:
        its starts; ``start``: with a given start too). ``did design`` times a solve of that batch to refuse a
        ``--steps`` that would run too long; default 1."""
        return 1

    def action_counts(self, context: Context) -> list[int]:
        """Each player's real action count, for numbered names; default from the action mask ``[1, N, A_max]``."""
        return [int(n) for n in context["mask"][0].sum(-1)]

    def player_names(self, count: int) -> list[str]:
        """Names of ``count`` players a file did not name; default ``player_word`` numbered from 1."""
        return numbered(self.player_word, count)

    def names(self, context: Context) -> tuple[list[str], list[list[str]]]:
        """Player names and each player's action names: the file's (a :class:`NamedContext`), else numbered."""
        if isinstance(context, NamedContext):
            return context.players, context.actions
        counts = self.action_counts(context)
        return self.player_names(len(counts)), [numbered(self.action_word, n) for n in counts]

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """Lines showing an intervention ``[1, ...]``; default: its entries, one line per last-axis row."""
        x = intervention[0].detach().double()
        if x.dim() <= 1:
            return ["  ".join(f"{float(v):.4f}" for v in x.reshape(-1))]
        lines = [f"shape {list(x.shape)} (rows: the last axis)"]
        for index in torch.cartesian_prod(*[torch.arange(n) for n in x.shape[:-1]]).reshape(-1, x.dim() - 1).tolist():
            lines.append(f"[{', '.join(map(str, index))}]  " + "  ".join(f"{float(v):.4f}" for v in x[tuple(index)]))
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """Lines showing a joint ``[A_1..A_N]`` (real actions only); default: actions numbered from 1."""
        return format_joint(sigma.detach().double()).splitlines()

    def summary(self, context: Context) -> dict[str, Any]:
        """JSON-ready facts about the instance added to ``--json`` output (e.g. names); default none."""
        return {}
