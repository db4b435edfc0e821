"""``did design inverse TARGET.json``: read a target joint, design a game whose equilibrium is close to it, show it.

File format (a JSON object; ``description`` and ``notes`` are free text)::

    {"target":  [[0.30, 0.05, 0.05, 0.00], [...], [...]],   # [A_1]..[A_N], N = 1..4 players, >= 0
     "players": [{"name": "Row", "actions": ["top", "middle", "bottom"]},
                 {"name": "Column", "actions": ["a", "b", "c", "d"]}],   # optional
     "noise":   [[0, 0, 0, 0], [...], [...]]}                 # optional, the target's shape

``target`` is a nested list with one axis per player (at least 2 actions each, at
most 2^16 padded joint actions), of finite non-negative numbers with a positive
sum; it is normalised on load. ``players`` names the players and their actions
(default "player 1" and "action 1", ...); their action counts must match the
target's shape. ``noise`` is the generator's input noise (the inverse map is
one-to-many and a trained generator picks among the games through it); zeros, the
default, ask for a deterministic answer. Per-instance optimisation does not use it.

:class:`InverseInstances` is the task's ``Task.instances``:

* ``load``: the context exactly as :meth:`did_inverse.task.InverseSampler.sample`
  builds one (``target``, ``noise`` zero-padded to the largest player's action count,
  ``mask [1, N, A_max]``, the default float type);
* ``optimise``: :func:`optimise_game`, Adam on the whole game from the log-likelihood
  game :func:`did_inverse.generator.log_relative_target` (every player paid
  ``log(|A| tau(a))``), minimising the task objective's loss ``KL(tau || sigma*(G)) +
  mu ||G - Phi(G)||^2`` through the block; the best iterate (by KL) is kept;
* ``describe``: the target and the designed game per player, by action names;
  ``describe_joint``: a joint by action names.

The objective's value is ``KL(target || sigma)``: lower is better; the baseline, a
constant game, has the uniform joint as its equilibrium.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.blocks import EquilibriumBlock
from did_core.console import format_joint
from did_core.equilibria import Epsilon
from did_core.instance_files import InstanceError, array, check_fields, load_instance, names, padded
from did_core.tasks import Context, InstanceFormat, NamedContext
from did_inverse.generator import log_relative_target
from did_inverse.task import InverseObjective

__all__ = ["InverseInstances", "load_target", "optimise_game", "MAX_JOINT_ACTIONS"]

_KEYS = {"target", "players", "noise"}
#: the most padded joint actions ``A_max ** N`` of an instance (as the scheduling sampler allows).
MAX_JOINT_ACTIONS = 2 ** 16


def _shape(data: Any) -> tuple[int, ...]:
    """The shape of a nested list, read along its first entries (``array`` then checks every entry)."""
    shape = []
    while isinstance(data, list):
        shape.append(len(data))
        if not data:
            break
        data = data[0]
    return tuple(shape)


def _players(data: Any, shape: tuple[int, ...]) -> tuple[list[str], list[list[str]]]:
    """Player and action names from the optional ``players`` field, checked against the target's ``shape``."""
    if not isinstance(data, list) or len(data) != len(shape):
        raise InstanceError(f"'players' must be a list of {len(shape)} objects {{\"name\": ..., \"actions\": [...]}}, "
                            f"one per axis of 'target'")
    players, actions = [], []
    for i, player in enumerate(data):
        try:
            check_fields(player, {"name", "actions"}, {"name", "actions"})
        except InstanceError as exc:
            raise InstanceError(f"'players[{i}]': {exc}") from None
        if not isinstance(player["name"], str) or not player["name"].strip():
            raise InstanceError(f"'players[{i}].name' must be a non-empty string")
        own = names(player["actions"], f"players[{i}].actions", "action")
        if len(own) != shape[i]:
            raise InstanceError(f"'players[{i}].actions' names {len(own)} actions, but axis {i} of 'target' has "
                                f"{shape[i]}")
        players.append(player["name"])
        actions.append(own)
    if len(set(players)) != len(players):
        raise InstanceError("'players' has duplicate names")
    return players, actions


def _target_context(data: Any) -> NamedContext:
    """Validate a decoded JSON object and build its context (see the module docstring)."""
    check_fields(data, _KEYS, {"target"})
    shape = _shape(data["target"])
    if not 1 <= len(shape) <= 4:
        raise InstanceError(f"'target' must be a nested list with one axis per player (1 to 4 players), "
                            f"got {len(shape)} axes")
    if min(shape) < 2:
        raise InstanceError(f"'target' must give every player at least 2 actions, got shape {list(shape)}")
    if max(shape) ** len(shape) > MAX_JOINT_ACTIONS:
        raise InstanceError(f"'target' of shape {list(shape)} pads to {max(shape) ** len(shape)} joint actions "
                            f"(at most {MAX_JOINT_ACTIONS})")
    target = array(data["target"], "target", shape)
    if (target < 0).any():
        index = "".join(f"[{int(i)}]" for i in (target < 0).nonzero()[0])
        raise InstanceError(f"'target{index}' is {float(target[tuple((target < 0).nonzero()[0])]):g}: "
                            f"target probabilities must be non-negative")
    if not target.max() > 0:
        raise InstanceError("'target' sums to 0: give at least one positive entry (it is normalised on load)")
    target = target / target.max()  # weights up to float64's largest sum to a finite number once scaled
    total = float(target.sum())
    noise = array(data["noise"], "noise", shape) if "noise" in data else torch.zeros(shape, dtype=torch.float64)
    if "players" in data:
        players, actions = _players(data["players"], shape)
    else:
        players = [f"player {i + 1}" for i in range(len(shape))]
        actions = [[f"action {a + 1}" for a in range(n)] for n in shape]
    a_max, n = max(shape), len(shape)
    dtype = torch.get_default_dtype()  # as the sampler's: a trained generator takes this float type
    context = {
        "target": padded(target / total, (a_max,) * n).unsqueeze(0).to(dtype),
        "noise": padded(noise, (a_max,) * n).unsqueeze(0).to(dtype),
        "mask": (torch.arange(a_max).view(1, -1) < torch.tensor(shape).view(-1, 1)).unsqueeze(0),
    }
    return NamedContext(context, players, actions)


def load_target(path: Path) -> NamedContext:
    """The target-joint file in ``path`` as a context of one; any problem is one ``InstanceError`` line."""
    return load_instance(path, _target_context)


def optimise_game(context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon | float = 0.05,
                  steps: int = 200, lr: float = 0.05, objective: InverseObjective | None = None) -> Tensor:
    """Per-instance games ``[B, N, A..]`` by gradient descent on the game through ``block``.

    Starts from the log-likelihood game (every player paid ``log(|A| tau(a))``, as the
    task's generator does before its correction) and takes ``steps`` Adam steps of
    rate ``lr`` on the whole game, minimising ``objective.loss`` (default: the task's
    objective with its default options) at progress 1. Returns per context the
    iterate with the smallest ``KL(tau || sigma*)`` under ``block`` (the start included).
    """
    eps = Epsilon.of(eps)
    objective = objective or InverseObjective()
    context = {key: value.double() if value.is_floating_point() else value for key, value in context.items()}
    mask = context["mask"]
    n_players = mask.shape[1]
    start = log_relative_target(context["target"], mask).unsqueeze(1)
    game = start.expand(-1, n_players, *start.shape[2:]).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([game], lr=lr)
    best = game.detach().clone()
    best_value = torch.full((mask.shape[0],), torch.inf, dtype=torch.float64)
    view = (-1, *[1] * (game.dim() - 1))
    for step in range(steps + 1):
        games, induced_mask = objective.induce(context, game if step < steps else game.detach())
        eq = block(games, induced_mask, concept=concept, eps=eps)
        value = objective.value(context, game, eq).detach()
        better = value < best_value
        best = torch.where(better.view(view), game.detach(), best)
        best_value = torch.where(better, value, best_value)
        if step < steps:
            loss, _ = objective.loss(context, game, eq, 1.0)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return objective.induce(context, best)[0]


def _real(context: Context) -> tuple[slice, ...]:
    return tuple(slice(0, int(n)) for n in context["mask"][0].sum(-1))


class InverseInstances(InstanceFormat):
    """Target-joint JSON files for ``did design inverse``."""

    noun = "game"
    baseline = "constant game"
    value_name = "KL(target || sigma)"
    method = "per-instance gradient descent (Adam) on the game from the log-likelihood game"

    def load(self, path: Path) -> Context:
        return load_target(Path(path))

    optimiser = staticmethod(optimise_game)

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """The target joint, then every player's payoffs in the game ``[1, N, A..]``, by action names."""
        players, actions = self.names(context)
        real = _real(context)
        lines = ["target joint:"]
        lines += ["  " + line for line in format_joint(context["target"][0][real].double(), players, actions)
                  .splitlines()]
        for p, player in enumerate(players):
            lines.append(f"payoffs of {player}:")
            lines += ["  " + line for line in format_joint(intervention[0, p][real].detach().double(), players,
                                                             actions).splitlines()]
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """A joint ``[A_1..A_N]`` (real actions) by action names."""
        players, actions = self.names(context)
        return format_joint(sigma.detach().double(), players, actions).splitlines()

    def summary(self, context: Context) -> dict[str, Any]:
        """The names and the normalised target (real joint actions only)."""
        players, actions = self.names(context)
        return {"players": players, "actions": actions,
                "target": context["target"][0][_real(context)].double().tolist()}
