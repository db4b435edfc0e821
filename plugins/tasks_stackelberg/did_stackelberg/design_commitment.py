"""``did design commitment GAME.json``: read a commitment game, optimise the leader's commitment, show it.

File format (a JSON object; ``description`` and ``notes`` are free text)::

    {"leader": "row player", "followers": ["column player"],
     "leader_actions": ["A", "B", "C"], "follower_actions": [["A", "B", "C"]],
     "leader_payoffs":   [[20, 0, 0], [30, 10, 0], [0, 0, 5]],          # [A_L, A_1..A_N]
     "follower_payoffs": [[[15, 0, 0], [0, 5, 0], [0, 0, 10]]]}          # [N, A_L, A_1..A_N]

(axis 0 of every payoff array is the leader's action). :class:`CommitmentInstances`
is the task's ``Task.instances``: ``load`` builds a context of one (with the
strong Stackelberg value by multiple LPs in ``sse``); ``optimise`` is
:func:`optimise_commitment`; ``describe`` shows the commitment by action names
beside the strong Stackelberg commitment and value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.blocks import EquilibriumBlock
from did_core.console import joint_lines
from did_core.equilibria import Epsilon
from did_core.files import shown
from did_core.tasks import Context, InstanceFormat, NamedContext, numbered
from did_stackelberg.commitment import induced_games, leader_utility, sse_values
from did_stackelberg.instances import InstanceError, array, names, padded, read_object
from did_stackelberg.reference import strong_stackelberg

__all__ = ["CommitmentInstances", "load_commitment", "optimise_commitment", "PURE_LOGIT", "LOGIT_SCALE"]

_KEYS = {"leader", "followers", "leader_actions", "follower_actions", "leader_payoffs", "follower_payoffs"}

#: logit of the favoured action in the "near-pure" starts of :func:`optimise_commitment`.
PURE_LOGIT = 2.0
#: the commitment is ``softmax(LOGIT_SCALE * theta)``: with ``did design``'s default rate 0.05, unused
#: actions die within the 200 steps (unscaled, game 2 kept 0.4% on row C: 27.03 instead of 27.12 at eps 0.003).
LOGIT_SCALE = 4.0


def load_commitment(path: Path) -> NamedContext:
    """The commitment game in ``path`` as a context of one (see the module docstring)."""
    data = read_object(path, _KEYS, _KEYS)
    try:
        leader = names([data["leader"]], "leader", "player")[0]
        followers = names(data["followers"], "followers", "follower")
        if leader in followers:
            raise InstanceError(f"the leader's name {shown(leader)} is also a follower's: players need distinct "
                                f"names")
        if len(followers) > 3:
            raise InstanceError(f"at most 3 followers are supported, got {len(followers)}")
        leader_actions = names(data["leader_actions"], "leader_actions", "action")
        if not isinstance(data["follower_actions"], list) or len(data["follower_actions"]) != len(followers):
            raise InstanceError(f"'follower_actions' must hold one list of action names per follower "
                                f"({len(followers)})")
        actions = [names(a, f"follower_actions[{i}]", "action") for i, a in enumerate(data["follower_actions"])]
        sizes = (len(leader_actions), *(len(a) for a in actions))
        leader_payoffs = array(data["leader_payoffs"], "leader_payoffs", sizes)
        follower_payoffs = array(data["follower_payoffs"], "follower_payoffs", (len(followers), *sizes))
    except InstanceError as exc:
        raise InstanceError(f"{path}: {exc}") from None
    n, a = len(followers), max(sizes[1:])
    shape = (sizes[0], *[a] * n)
    context = {
        "leader": padded(leader_payoffs, shape).unsqueeze(0),
        "followers": padded(follower_payoffs, (n, *shape)).unsqueeze(0),
        "leader_mask": torch.ones(1, sizes[0], dtype=torch.bool),
        "mask": (torch.arange(a).view(1, -1) < torch.tensor(sizes[1:]).view(-1, 1)).unsqueeze(0),
    }
    context["sse"] = sse_values(context)
    return NamedContext(context, [leader, *followers], [leader_actions, *actions])


def optimise_commitment(context: Context, block: EquilibriumBlock, concept: Concept,
                        eps: Epsilon | float = 0.05, steps: int = 200, lr: float = 0.05) -> Tensor:
    """Per-instance commitments ``[B, L]`` by multi-start gradient ascent through ``block``.

    The commitment is ``softmax(LOGIT_SCALE * theta)`` over the real leader actions. Starts: the
    uniform commitment and, for every leader action ``l``, logit ``PURE_LOGIT`` on
    ``l`` (0 elsewhere). All starts of all contexts run as one batch, ``steps`` Adam
    steps whose rate decays linearly from ``lr`` to ``lr / 10``, ascending the
    leader's utility under ``block``'s equilibrium of the induced game. Returns per
    context the best iterate of any start (never worse than the uniform commitment
    under ``block``).
    """
    eps = Epsilon.of(eps)
    batch, n_leader = context["leader_mask"].shape
    k = 1 + n_leader
    repeated = {key: value.repeat(k, *[1] * (value.dim() - 1)) for key, value in context.items()}
    real = repeated["leader_mask"]
    theta = torch.zeros(k, batch, n_leader, dtype=torch.float64)
    for action in range(n_leader):
        theta[1 + action, :, action] = PURE_LOGIT / LOGIT_SCALE
    theta = theta.reshape(k * batch, n_leader).requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 1 - 0.9 * s / max(steps, 1))
    best = torch.zeros(k * batch, n_leader, dtype=torch.float64)
    best_value = torch.full((k * batch,), -torch.inf, dtype=torch.float64)
    for step in range(steps + 1):
        x = torch.softmax((LOGIT_SCALE * theta).masked_fill(~real, -torch.inf), dim=1)
        games = induced_games(repeated, x if step < steps else x.detach())
        eq = block(games, repeated["mask"], concept=concept, eps=eps)
        utility = leader_utility(repeated, x, eq.sigma)
        better = utility.detach() > best_value
        best = torch.where(better.view(-1, 1), x.detach(), best)
        best_value = torch.where(better, utility.detach(), best_value)
        if step < steps:
            optimiser.zero_grad()
            (-utility.sum()).backward()
            optimiser.step()
            schedule.step()
    winner = best_value.view(k, batch).argmax(dim=0)
    return best.view(k, batch, n_leader)[winner, torch.arange(batch)]


class CommitmentInstances(InstanceFormat):
    """Commitment-game JSON files for ``did design commitment``."""

    noun = "commitment"
    baseline = "uniform commitment"
    value_name = "leader's utility"
    method = "per-instance gradient ascent (Adam) from the uniform and every near-pure commitment"
    optimiser = staticmethod(optimise_commitment)

    def load(self, path: Path) -> Context:
        return load_commitment(Path(path))

    def action_counts(self, context: Context) -> list[int]:
        """The leader's action count (``leader_mask [1, A_max]``), then the followers' (``mask [1, N, A_max]``)."""
        return [int(context["leader_mask"][0].sum()), *(int(c) for c in context["mask"][0].sum(dim=1))]

    def player_names(self, count: int) -> list[str]:
        """The leader first, then the followers."""
        return ["leader", *numbered("follower", count - 1)]

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """The commitment by action names, and the strong Stackelberg commitment and value (multiple LPs)."""
        players, actions = self.names(context)
        n_l = len(actions[0])
        shown = lambda x: "  ".join(f"{a} {float(p):.4f}" for a, p in zip(actions[0], x))  # noqa: E731
        real = (slice(0, n_l), *[slice(0, len(a)) for a in actions[1:]])
        sse = strong_stackelberg(context["leader"][0][real].numpy(),
                                 context["followers"][0][(slice(None), *real)].numpy())
        lines = [f"{players[0]} commits to: {shown(intervention[0, :n_l])}"]
        if sse.response:
            response = ", ".join(a[i] for a, i in zip(actions[1:], sse.response))
            verb = "plays" if len(players) == 2 else "play"
            lines.append(f"strong Stackelberg value (multiple LPs, exact best responses): {sse.value:.4f}, "
                         f"committing to {shown(sse.strategy)}; {', '.join(players[1:])} {verb} {response}")
        else:
            lines.append("strong Stackelberg value (multiple LPs): no follower profile is ever a best response")
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """The followers' joint ``[A_1..A_N]`` by action names."""
        players, actions = self.names(context)
        return joint_lines(players[1:], actions[1:], sigma)

    def summary(self, context: Context) -> dict[str, Any]:
        """Names and the strong Stackelberg value."""
        players, actions = self.names(context)
        return {"players": players, "actions": actions, "strong_stackelberg_value": float(context["sse"][0])}
