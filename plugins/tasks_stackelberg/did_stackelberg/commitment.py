"""Leader commitment (Stackelberg): the leader commits to a mixed strategy, the followers respond in equilibrium.

Context (batch ``B``, ``N`` followers, leader actions padded to ``L``, follower
actions padded to ``A``): ``leader [B, L, A..A]`` (the leader's payoff at its
action and the followers' joint action), ``followers [B, N, L, A..A]`` (follower
``i``'s payoff at the same), ``leader_mask [B, L]``, ``mask [B, N, A]`` (real
actions, first) and, when the sampler's ``reference`` is on, ``sse [B]``: the
strong Stackelberg value by multiple LPs (:func:`did_stackelberg.reference.strong_stackelberg`;
``nan`` where no LP is feasible). Padded entries are 0.

* Intervention: the leader's mixed strategy ``x [B, L]`` (0 on padded actions).
* Induced game: the followers' game ``g_i(a) = sum_l x_l u_i(l, a)``, ``[B, N, A..A]``
  -- for one follower a one-player game whose eps-ME equilibrium is a max-entropy
  eps-best response.
* Value: the leader's expected utility ``sum_{l, a} x_l sigma(a) u_L(l, a)``
  (higher is better); loss: its negative mean; baseline: the uniform commitment.
* An intervention that is not a distribution (the local polish searches without
  bounds) is projected: negative entries count as 0, then it is normalised
  (all-zero: uniform).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.games import joint_mask
from did_core.tasks import Context, ContextSampler, DesignObjective, Options
from did_stackelberg.reference import strong_stackelberg
from did_stackelberg.sampling import check_ranges

__all__ = ["CommitmentSampler", "CommitmentObjective", "induced_games", "leader_utility", "feasible_strategy",
           "payoff_scale", "sse_values"]


def _leader_mask_joint(leader_mask: Tensor, mask: Tensor, sizes: tuple[int, ...]) -> Tensor:
    """Real (leader action, follower joint) cells ``[B, L, A..A]``."""
    n = mask.shape[1]
    follower = joint_mask(mask, sizes[1:]).unsqueeze(1)
    return leader_mask[:, : sizes[0]].reshape(-1, sizes[0], *[1] * n) & follower


def _players(context: Context) -> tuple[Tensor, Tensor]:
    """Leader and followers as the players of one game ``[B, 1 + N, L, A..A]`` and its real cells ``[B, 1, L, A..A]``."""
    payoffs = torch.cat([context["leader"].unsqueeze(1), context["followers"]], dim=1)
    real = _leader_mask_joint(context["leader_mask"], context["mask"], tuple(payoffs.shape[2:]))
    return payoffs, real.unsqueeze(1).to(payoffs.dtype)


def _moments(payoffs: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and RMS deviation ``[B, 1 + N]`` of each player's payoffs over the real cells."""
    count = real.flatten(2).sum(dim=2).clamp_min(1)
    mean = (payoffs * real).flatten(2).sum(dim=2) / count
    centred = (payoffs - mean.view(*mean.shape, *[1] * (payoffs.dim() - 2))) * real
    return mean, (centred.pow(2).flatten(2).sum(dim=2) / count).sqrt().clamp_min(1e-9)


def payoff_scale(context: Context) -> Tensor:
    """Each player's payoff scale ``[B, 1 + N]`` (leader first): the RMS deviation over the real cells."""
    return _moments(*_players(context))[1]


def sse_values(context: Context) -> Tensor:
    """The strong Stackelberg value of every context ``[B]`` (multiple LPs on the real actions)."""
    out = []
    for b in range(context["leader"].shape[0]):
        n_l = int(context["leader_mask"][b].sum())
        counts = [int(c) for c in context["mask"][b].sum(dim=1)]
        real = (slice(0, n_l), *[slice(0, c) for c in counts])
        leader = context["leader"][b][real].double().numpy()
        followers = context["followers"][b][(slice(None), *real)].double().numpy()
        out.append(strong_stackelberg(leader, followers).value)
    return torch.tensor(np.array(out, dtype=np.float64))


class CommitmentSampler(ContextSampler):
    """Random commitment games: payoffs ``U[low, high]`` on real cells, sizes ``U{min..max}`` per player.

    The leader's action count and each follower's are drawn independently
    (``square``: one count for everybody). ``reference`` solves the multiple LPs
    of every context (about 2 ms per LP: off in the training profiles, on for
    evaluation and instance files).
    """

    class Options(Options):
        n_followers: int = Field(1, ge=1, le=3)
        min_actions: int = Field(2, ge=1)
        max_actions: int = Field(6, ge=1, le=16)
        square: bool = Field(False, description="one action count for the leader and every follower")
        low: float = 0.0
        high: float = 1.0
        reference: bool = Field(True, description="compute the strong Stackelberg value (scipy LPs) into 'sse'")
        regret_feature: bool = Field(True, description="give the generator each player's own-action regret")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"min_actions": 3, "max_actions": 6, "reference": False},
        "paper": {"min_actions": 3, "max_actions": 12, "reference": False},
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_ranges(type(self).__name__, self.options)

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        n, a = o.n_followers, o.max_actions
        counts = torch.randint(o.min_actions, a + 1, (batch, 1 if o.square else 1 + n), generator=generator)
        counts = counts.expand(batch, 1 + n)
        index = torch.arange(a).view(1, 1, -1)
        leader_mask, mask = index[:, 0] < counts[:, :1], index < counts[:, 1:].unsqueeze(-1)
        sizes = (a,) * (1 + n)
        real = _leader_mask_joint(leader_mask, mask, sizes)
        payoffs = o.low + (o.high - o.low) * torch.rand(batch, 1 + n, *sizes, generator=generator)
        payoffs = payoffs * real.unsqueeze(1)
        context = {"leader": payoffs[:, 0], "followers": payoffs[:, 1:], "leader_mask": leader_mask, "mask": mask}
        if o.reference:
            context["sse"] = sse_values(context)
        return context

    def size_of(self, context: Context) -> Tensor:
        """The largest action count of any player."""
        return torch.maximum(context["leader_mask"].sum(dim=1), context["mask"].sum(dim=2).amax(dim=1))

    def extents(self, context: Context) -> Tensor:
        """The leader's action count and each follower's ``[B, 1 + N]``."""
        return torch.cat([context["leader_mask"].sum(dim=1, keepdim=True), context["mask"].sum(dim=2)], dim=1)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        n = self.options.n_followers
        return {
            "leader": {1: (0,), **{2 + i: (1 + i,) for i in range(n)}},
            "followers": {2: (0,), **{3 + i: (1 + i,) for i in range(n)}},
            "leader_mask": {1: (0,)},
            "mask": {2: tuple(range(1, 1 + n))},
        }

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """Leader and followers as the players of one game ``[B, C, 1 + N, L, A..A]``, mask ``[B, 1 + N, max(L, A)]``.

        Channels: the payoffs, each player's payoffs standardised over its real cells
        (mean 0, RMS 1), so the generator sees the shape of a game at any scale, and
        (``regret_feature``) each player's own-action regret ``u_p(a) - max_d u_p(d, a_{-p})``
        on the same scale: who best-responds to what, which the pools do not compute.
        """
        payoffs, real = _players(context)
        leader_mask, mask = context["leader_mask"], context["mask"]
        width = max(leader_mask.shape[1], mask.shape[2])
        full_mask = torch.cat([F.pad(leader_mask, (0, width - leader_mask.shape[1])).unsqueeze(1),
                               F.pad(mask, (0, width - mask.shape[2]))], dim=1)
        mean, rms = _moments(payoffs, real)
        view = (*payoffs.shape[:2], *[1] * (payoffs.dim() - 2))
        mean, rms = mean.view(view), rms.view(view)
        centred = (payoffs - mean) * real
        channels = [payoffs, centred / rms]
        if self.options.regret_feature:
            cells = real.bool().expand_as(payoffs)
            regret = [payoffs[:, p] - payoffs[:, p].masked_fill(~cells[:, p], -torch.inf).amax(dim=1 + p, keepdim=True)
                      for p in range(payoffs.shape[1])]
            channels.append(torch.stack(regret, dim=1).masked_fill(~cells, 0.0) / rms)
        return torch.stack(channels, dim=1), full_mask


def feasible_strategy(context: Context, x: Tensor) -> Tensor:
    """``x [B, L]`` projected onto the real simplex: negatives to 0, normalised; all-zero rows become uniform."""
    real = context["leader_mask"][:, : x.shape[1]].to(x.dtype)
    x = x.clamp_min(0) * real
    total = x.sum(dim=1, keepdim=True)
    uniform = real / real.sum(dim=1, keepdim=True)
    return torch.where(total > 0, x / total.clamp_min(1e-300), uniform)


def induced_games(context: Context, x: Tensor) -> Tensor:
    """The followers' game ``g_i(a) = sum_l x_l u_i(l, a)``: ``[B, N, A..A]`` from ``x [B, L]``."""
    followers = context["followers"].to(x.dtype)
    n = followers.shape[1]
    return (x.reshape(x.shape[0], 1, -1, *[1] * n) * followers).sum(dim=2)


def leader_utility(context: Context, x: Tensor, sigma: Tensor) -> Tensor:
    """``sum_{l, a} x_l sigma(a) u_L(l, a)`` per context ``[B]`` for a joint ``sigma [B, A..A]`` of the followers."""
    leader = context["leader"].to(sigma.dtype)
    per_action = (leader * sigma.unsqueeze(1)).flatten(2).sum(dim=2)  # [B, L]
    return (x.to(sigma.dtype) * per_action).sum(dim=1)


class CommitmentObjective(DesignObjective):
    """The leader's problem: maximise its expected utility under the followers' equilibrium."""

    minimize: ClassVar[bool] = False
    report_change: ClassVar[bool] = False
    metric_name: ClassVar[str] = "leader's utility"

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        return induced_games(context, feasible_strategy(context, intervention)), context["mask"]

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        return leader_utility(context, feasible_strategy(context, intervention), eq.sigma)

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """``sum_a sigma(a) c(a)`` with ``c(a) = sum_l x_l u_L(l, a)`` (``x`` projected), constant 0."""
        x = feasible_strategy(context, intervention)
        leader = context["leader"]
        dtype = torch.promote_types(x.dtype, leader.dtype)
        n = leader.dim() - 2
        coefficients = (x.to(dtype).reshape(*x.shape, *[1] * n) * leader.to(dtype)).sum(dim=1)
        return coefficients, coefficients.new_zeros(coefficients.shape[0])

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        utility = self.value(context, intervention, eq).mean()
        return -utility, {"leader_utility": float(utility.detach())}

    def baseline_intervention(self, context: Context) -> Tensor:
        """The uniform commitment over the real leader actions ``[B, L]``."""
        real = context["leader_mask"].to(context["leader"].dtype)
        return real / real.sum(dim=1, keepdim=True)

    def intervention_mask(self, context: Context) -> Tensor:
        """The real leader actions ``[B, L]``."""
        return context["leader_mask"]
