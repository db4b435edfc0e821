"""Matrix design (Monderer and Tennenholtz 2003, k-implementation): promise payments per cell to steer the followers.

Context (batch ``B``, ``N`` players, actions padded to ``A``): ``games [B, N, A..A]``
(the followers' game), ``mask [B, N, A]``, ``goal [B, A..A]`` (the designer's
value of each joint action: 1 on a target set of joint actions and 0 elsewhere,
or the welfare ``sum_i u_i(a)``) and ``welfare [B]`` (true where the goal is the
welfare). Padded entries are 0.

* Intervention: promised payments ``x [B, N, A..A] >= 0`` (player ``i`` is paid
  ``x_i(a)`` if ``a`` is played); induced game ``u_i(a) + x_i(a)``. Negative
  entries (only the unbounded local polish proposes them) count as 0.
* Payments made: ``E_sigma sum_i x_i(a)`` -- a promise off the equilibrium path costs nothing.
* Loss: ``-E_sigma goal + lam * payments made``, ``lam`` ramped linearly from
  ``lam_start`` to ``lam`` over the first ``ramp`` of training.
* Value: ``E_sigma goal - lam * payments made`` (the final ``lam``); the reported
  metric is its change against no payments (the baseline).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.games import joint_mask
from did_core.tasks import Context, ContextSampler, DesignObjective, Options, RampedPenalty
from did_stackelberg.sampling import check_ranges

__all__ = ["MatrixDesignSampler", "MatrixDesignObjective", "payments", "payments_made", "goal_value"]


class MatrixDesignSampler(ContextSampler):
    """Random followers' games (payoffs ``U[low, high]``, ``n ~ U{min..max}`` actions per player) and goals.

    ``goal``: ``target`` (each real joint action joins the target set with
    probability ``density``; at least one does), ``welfare``, or ``mixed`` (each
    context one of the two with probability 1/2).
    """

    class Options(Options):
        n_players: int = Field(2, ge=1, le=3)
        min_actions: int = Field(2, ge=1)
        max_actions: int = Field(4, ge=1, le=12)
        low: float = 0.0
        high: float = 1.0
        goal: Literal["target", "welfare", "mixed"] = "target"
        density: float = Field(0.3, gt=0, le=1, description="share of joint actions in a target set")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"min_actions": 2, "max_actions": 3},
        "paper": {"min_actions": 2, "max_actions": 6},
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_ranges(type(self).__name__, self.options)

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        n, a = o.n_players, o.max_actions
        sizes = (a,) * n
        counts = torch.randint(o.min_actions, a + 1, (batch, n), generator=generator)
        mask = torch.arange(a).view(1, 1, -1) < counts.unsqueeze(-1)
        real = joint_mask(mask, sizes)
        games = (o.low + (o.high - o.low) * torch.rand(batch, n, *sizes, generator=generator)) * real.unsqueeze(1)
        draw = torch.rand(batch, *sizes, generator=generator).masked_fill(~real, 2.0)
        lowest = draw.flatten(1).argmin(dim=1)
        target = (draw < o.density).flatten(1)
        target[torch.arange(batch), lowest] = True
        target = target.view_as(real).to(games.dtype)
        if o.goal == "mixed":
            welfare = torch.rand(batch, generator=generator) < 0.5
        else:
            welfare = torch.full((batch,), o.goal == "welfare")
        total = games.sum(dim=1)
        goal = torch.where(welfare.view(-1, *[1] * n), total, target)
        return {"games": games, "mask": mask, "goal": goal, "welfare": welfare}

    def size_of(self, context: Context) -> Tensor:
        """The largest action count of any player."""
        return context["mask"].sum(dim=2).amax(dim=1)

    def extents(self, context: Context) -> Tensor:
        """Each player's action count ``[B, N]``."""
        return context["mask"].sum(dim=2)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        players = range(self.options.n_players)
        return {"games": {2 + p: (p,) for p in players}, "goal": {1 + p: (p,) for p in players},
                "mask": {2: tuple(players)}}

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """``[B, 2, N, A..A]``: the followers' payoffs, and the goal in every player's slice."""
        games = context["games"]
        return torch.stack([games, context["goal"].unsqueeze(1).expand_as(games)], dim=1), context["mask"]


def payments(context: Context, intervention: Tensor) -> Tensor:
    """Promised payments ``[B, N, A..A] >= 0`` on real cells (negative entries count as 0)."""
    real = joint_mask(context["mask"], intervention.shape[2:]).unsqueeze(1)
    return intervention.clamp_min(0) * real


def payments_made(context: Context, intervention: Tensor, sigma: Tensor) -> Tensor:
    """``E_sigma sum_i x_i(a)`` per context ``[B]``."""
    paid = payments(context, intervention).to(sigma.dtype).sum(dim=1)
    return (sigma * paid).flatten(1).sum(dim=1)


def goal_value(context: Context, sigma: Tensor) -> Tensor:
    """``E_sigma goal`` per context ``[B]``: the target set's probability, or the expected welfare."""
    return (sigma * context["goal"].to(sigma.dtype)).flatten(1).sum(dim=1)


class MatrixDesignObjective(DesignObjective):
    """Reach the goal in equilibrium while paying little (see the module docstring)."""

    class Options(RampedPenalty):
        lam: float = Field(1.0, ge=0, description="final weight of the payments made")
        lam_start: float = Field(0.1, ge=0, description="weight of the payments made at the start of training")

    minimize: ClassVar[bool] = False
    report_change: ClassVar[bool] = True
    metric_name: ClassVar[str] = "goal - lam * payments, change"

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        games = context["games"].to(intervention.dtype)
        return games + payments(context, intervention), context["mask"]

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        return goal_value(context, eq.sigma) - self.options.lam * payments_made(context, intervention, eq.sigma)

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """``sum_a sigma(a) (goal(a) - lam sum_i x_i(a))``: ``c [B, A..A]``, constant 0."""
        goal = context["goal"]
        dtype = torch.promote_types(intervention.dtype, goal.dtype)
        coefficients = goal.to(dtype) - self.options.lam * payments(context, intervention).to(dtype).sum(dim=1)
        return coefficients, coefficients.new_zeros(coefficients.shape[0])

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        lam = self.options.weight(progress)
        goal = goal_value(context, eq.sigma).mean()
        paid = payments_made(context, intervention, eq.sigma).mean()
        return -(goal - lam * paid), {"goal": float(goal.detach()), "paid": float(paid.detach()), "lam": lam}

    def baseline_intervention(self, context: Context) -> Tensor:
        """No payments: zeros ``[B, N, A..A]``."""
        return torch.zeros_like(context["games"])

    def intervention_mask(self, context: Context) -> Tensor:
        """Real cells of every player's payments ``[B, N, A..A]``."""
        games = context["games"]
        return joint_mask(context["mask"], games.shape[2:]).unsqueeze(1).expand_as(games)
