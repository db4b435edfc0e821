"""``did design matrix_design GAME.json``: read a followers' game and goal, optimise promised payments, show them.

File format (a JSON object; ``description`` and ``notes`` are free text)::

    {"players": ["row", "column"], "actions": [["A", "B"], ["A", "B"]],
     "payoffs": [[[3, 6], [4, 2]], [[3, 4], [6, 2]]],                  # [N, A_1..A_N]
     "goal": "target", "target": [["A", "B"], ["B", "A"]]}              # or "goal": "welfare"

``target`` lists joint actions by action names (required for ``goal: target``).
:class:`MatrixDesignInstances` is the task's ``Task.instances``; ``optimise`` is
:func:`optimise_payments`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.blocks import EquilibriumBlock
from did_core.console import joint_lines
from did_core.equilibria import Epsilon
from did_core.files import shown
from did_core.games import joint_mask
from did_core.tasks import Context, InstanceFormat, NamedContext
from did_stackelberg.instances import InstanceError, array, names, padded, read_object
from did_stackelberg.matrix_design import MatrixDesignObjective, goal_value, payments_made

__all__ = ["MatrixDesignInstances", "load_matrix_design", "optimise_payments", "RANDOM_STARTS", "RAMP"]

_KEYS = {"players", "actions", "payoffs", "goal", "target"}

def load_matrix_design(path: Path) -> NamedContext:
    """The matrix-design instance in ``path`` as a context of one (see the module docstring)."""
    data = read_object(path, _KEYS, _KEYS - {"target"})
    try:
        players = names(data["players"], "players", "player")
        if len(players) > 3:
            raise InstanceError(f"at most 3 players are supported, got {len(players)}")
        if not isinstance(data["actions"], list) or len(data["actions"]) != len(players):
            raise InstanceError(f"'actions' must hold one list of action names per player ({len(players)})")
        actions = [names(a, f"actions[{i}]", "action") for i, a in enumerate(data["actions"])]
        sizes = tuple(len(a) for a in actions)
        payoffs = array(data["payoffs"], "payoffs", (len(players), *sizes))
        if data["goal"] not in ("target", "welfare"):
            raise InstanceError(f"'goal' must be \"target\" or \"welfare\", got {shown(data['goal'])}")
        goal = payoffs.sum(dim=0)
        if data["goal"] == "target":
            target = data.get("target")
            if not isinstance(target, list) or not target:
                raise InstanceError("'target' must be a non-empty list of joint actions (one action name per player)")
            goal = torch.zeros(sizes, dtype=torch.float64)
            for k, joint in enumerate(target):
                if not isinstance(joint, list) or len(joint) != len(players) or any(
                        name not in own for name, own in zip(joint, actions)):
                    raise InstanceError(f"'target[{k}]' must name one action of each player, got {shown(joint)}")
                goal[tuple(own.index(name) for name, own in zip(joint, actions))] = 1.0
    except InstanceError as exc:
        raise InstanceError(f"{path}: {exc}") from None
    n, a = len(players), max(sizes)
    context = {
        "games": padded(payoffs, (n, *[a] * n)).unsqueeze(0),
        "mask": (torch.arange(a).view(1, -1) < torch.tensor(sizes).view(-1, 1)).unsqueeze(0),
        "goal": padded(goal, (a,) * n).unsqueeze(0),
        "welfare": torch.tensor([data["goal"] == "welfare"]),
    }
    return NamedContext(context, players, actions)


#: random starts of the per-instance optimisation (beside one start from small flat payments).
RANDOM_STARTS = 8
#: fraction of the steps over which the payment weight ramps from 0 to the objective's ``lam``.
RAMP = 0.5


def optimise_payments(context: Context, block: EquilibriumBlock, concept: Concept,
                      eps: Epsilon | float = 0.05, steps: int = 200, lr: float = 0.05,
                      objective: MatrixDesignObjective | None = None, random_starts: int = RANDOM_STARTS,
                      seed: int = 0) -> Tensor:
    """Per-instance payments ``[B, N, A..A]`` by multi-start gradient ascent through ``block``.

    The goal is not concave in the payments: on the Monderer-Tennenholtz game (absolute
    eps 0.01) ascent from small payments stalls at P(different actions) 0.67 even
    without a payment cost, because dominance needs a promise of 4 on one cell. So
    the starts are large random promises ``R * U[0, 2]`` per player and cell (``R``:
    the game's payoff range) beside one small flat start ``0.05 R``, and the payment
    weight ramps from 0 to ``objective.lam`` over the first ``RAMP`` of the steps:
    first the promises fix the behaviour, then those on the equilibrium path are
    withdrawn. Payments are ``R theta`` on real cells, ``theta >= 0`` kept by projection
    after each Adam step (a softplus never withdraws a payment fully: its slope vanishes
    at 0); ``steps`` steps, rate decaying linearly from ``lr`` to ``lr / 10``. Returns per context the best
    iterate by ``objective.value`` (final ``lam``) of any start, or no payments where
    none beats them (never worse than no payments under ``block``).
    """
    eps, objective = Epsilon.of(eps), objective or MatrixDesignObjective()
    games = context["games"].double()
    batch, shape = games.shape[0], games.shape[1:]
    k = 1 + random_starts
    repeated = {key: value.repeat(k, *[1] * (value.dim() - 1)) for key, value in context.items()}
    real = joint_mask(repeated["mask"], shape[1:]).unsqueeze(1).expand(-1, *shape)
    cells = real[:batch]
    spread = (games.masked_fill(~cells, -torch.inf).flatten(1).amax(dim=1)
              - games.masked_fill(~cells, torch.inf).flatten(1).amin(dim=1))
    scale = torch.where(spread > 0, spread, torch.ones_like(spread)).repeat(k).view(-1, *[1] * len(shape))
    generator = torch.Generator().manual_seed(seed)
    start = torch.cat([torch.full((batch, *shape), 0.05, dtype=torch.float64),
                       2 * torch.rand(random_starts * batch, *shape, generator=generator, dtype=torch.float64)])
    theta = start.requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 1 - 0.9 * s / max(steps, 1))

    def parts(x: Tensor) -> tuple[Tensor, Tensor]:
        induced, mask = objective.induce(repeated, x)
        sigma = block(induced, mask, concept=concept, eps=eps).sigma
        return goal_value(repeated, sigma), payments_made(repeated, x, sigma)

    best = torch.zeros(k * batch, *shape, dtype=torch.float64)
    with torch.no_grad():
        goal, paid = parts(best)
        best_value = goal - objective.options.lam * paid
    for step in range(steps + 1):
        x = scale * theta * real
        goal, paid = parts(x if step < steps else x.detach())
        value = goal - objective.options.lam * paid
        better = value.detach() > best_value
        best = torch.where(better.view(-1, *[1] * len(shape)), x.detach(), best)
        best_value = torch.where(better, value.detach(), best_value)
        if step < steps:
            lam = objective.options.lam * min(1.0, step / max(RAMP * steps, 1))
            optimiser.zero_grad()
            (-(goal - lam * paid).sum()).backward()
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                theta.clamp_(min=0.0)  # projected: payments are never negative, and reach exactly 0
    winner = best_value.view(k, batch).argmax(dim=0)
    return best.view(k, batch, *shape)[winner, torch.arange(batch)]


class MatrixDesignInstances(InstanceFormat):
    """Matrix-design JSON files for ``did design matrix_design``."""

    noun = "promised payments"
    baseline = "no payments"
    value_name = "goal - lam * payments made"
    method = f"per-instance gradient ascent (Adam) from {1 + RANDOM_STARTS} starts, payment weight ramped"
    optimiser = staticmethod(optimise_payments)

    def load(self, path: Path) -> Context:
        return load_matrix_design(Path(path))

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """The promised payments: one line per joint action, one column per player paid."""
        players, actions = self.names(context)
        x = intervention[0]
        labels = joint_lines(players, actions, torch.zeros(*(len(a) for a in actions)))
        width = len(labels[0]) - 1
        heads = [f"to {p}" for p in players]
        lines = [f"{labels[0][:width]}" + "  ".join(f"{h:>12}" for h in heads)]
        for index, label in zip(itertools.product(*(range(len(a)) for a in actions)), labels[1:]):
            lines.append(label[:width] + "  ".join(f"{float(x[(p, *index)]):>12.4f}" for p in range(len(players))))
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """A joint by action names, then the goal's value (target probability or expected welfare)."""
        players, actions = self.names(context)
        real = tuple(slice(0, len(a)) for a in actions)
        goal = float((sigma * context["goal"][0][real].to(sigma.dtype)).sum())
        kind = "expected welfare" if bool(context["welfare"][0]) else "P(target)"
        return joint_lines(players, actions, sigma) + [f"{kind}: {goal:.4f}"]

    def summary(self, context: Context) -> dict[str, Any]:
        players, actions = self.names(context)
        return {"players": players, "actions": actions, "goal": "welfare" if bool(context["welfare"][0]) else "target"}


