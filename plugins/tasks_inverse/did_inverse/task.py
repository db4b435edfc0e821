"""Inverse equilibrium: design a whole game whose eps-ME joint matches a target (docs/mathematics.md, 6.2).

Context: a target joint ``tau ~ Dirichlet(1)`` over the real joint actions of a
game with ``n_p ~ U{min..max}`` actions per player (non-square allowed), and
noise ``z ~ N(0, 1)`` of the same shape (the inverse map is one-to-many).
Intervention: the game ``G [B, N, A..]``. Loss: ``KL(tau || sigma*(G)) +
mu ||G - Phi(G)||^2`` (mean over real entries) (the penalty fixes the output's gauge only). Baseline: a
constant game, whose eps-ME joint is uniform.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from did_core.blocks import Equilibrium
from did_core.equilibria import kl_divergence
from did_core.games import embed, joint_mask, random_sizes_mask
from did_core.tasks import Context, ContextSampler, DesignObjective, Options

__all__ = ["InverseSampler", "InverseObjective", "log_relative_target"]


def log_relative_target(target: Tensor, mask: Tensor) -> Tensor:
    """``log(|A| tau)`` clamped at ``log(1e-4)`` on real joints, 0 on padding: ``[B, A_1..A_N]``."""
    n_players = mask.shape[1]
    real = joint_mask(mask, target.shape[1:])
    joint = mask.sum(dim=2).prod(dim=1).to(target.dtype).reshape(-1, *[1] * n_players)
    return torch.log((joint * target).clamp_min(1e-4)) * real


class InverseSampler(ContextSampler):
    """Target joints and noise, padded to ``max_actions`` per player.

    Context keys: ``target [B, A..]`` (zero on padded joints), ``noise [B, A..]``,
    ``mask [B, N, A]``.
    """

    class Options(Options):
        n_players: int = Field(2, ge=1, le=4)
        min_actions: int = Field(2, ge=1)
        max_actions: int = Field(16, ge=1, le=32)
        features: Literal["raw", "scaled"] = Field(
            "raw", description="generator input: raw (target, noise), or scaled (log(|A| target), "
            "|A| target - 1, noise), which stays O(1) at every size")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"min_actions": 2, "max_actions": 4, "features": "scaled"},
        # Raw targets are ~1/|A| (1/256 at 16 x 16): the paper-size generator learned only the uniform game.
        "paper": {"min_actions": 2, "max_actions": 16, "features": "scaled"},
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.min_actions > self.options.max_actions:
            raise ValueError(f"invalid options for InverseSampler: min_actions {self.options.min_actions} "
                             f"> max_actions {self.options.max_actions}")

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        mask = random_sizes_mask(batch, o.n_players, o.min_actions, o.max_actions, generator=generator)
        sizes = [o.max_actions] * o.n_players
        jm = joint_mask(mask, sizes)
        # Dirichlet(1) over the real joint actions: normalised standard exponentials.
        exponential = -torch.log(torch.rand(batch, *sizes, generator=generator).clamp_min(1e-12))
        weights = exponential * jm
        target = weights / weights.flatten(1).sum(dim=1).view(-1, *[1] * o.n_players)
        noise = torch.randn(batch, *sizes, generator=generator) * jm
        return {"target": target, "noise": noise, "mask": mask}

    def size_of(self, context: Context) -> Tensor:
        """The larger player's action count."""
        return context["mask"].sum(dim=2).amax(dim=1)

    def extents(self, context: Context) -> Tensor:
        """Each player's action count ``[B, N]``."""
        return context["mask"].sum(dim=2)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        players = range(self.options.n_players)
        joint = {1 + p: (p,) for p in players}
        return {"target": joint, "noise": joint, "mask": {2: tuple(players)}}

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """``[B, C, N, A..]``: the context for every player; ``C`` = 2 (raw) or 3 (scaled), 0 on padding."""
        mask = context["mask"]
        n_players = mask.shape[1]
        target = context["target"]
        if self.options.features == "raw":
            channels = torch.stack([target, context["noise"]], dim=1)
        else:
            real = joint_mask(mask, target.shape[1:])
            joint = mask.sum(dim=2).prod(dim=1).to(target.dtype).reshape(-1, *[1] * n_players)  # |A| per game
            relative = joint * target  # 1 on average over the real joint actions
            channels = torch.stack([log_relative_target(target, mask), (relative - 1) * real, context["noise"]], dim=1)
        return channels.unsqueeze(2).expand(-1, -1, n_players, *channels.shape[2:]), context["mask"]


class InverseObjective(DesignObjective):
    """``KL(tau || sigma*)`` with a gauge penalty ``mu ||G - Phi(G)||^2``."""

    class Options(Options):
        mu: float = Field(0.1, ge=0)

    minimize: ClassVar[bool] = True
    report_change: ClassVar[bool] = False
    metric_name: ClassVar[str] = "KL(target||sigma)"

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        mask = context["mask"]
        jm = joint_mask(mask, intervention.shape[2:]).unsqueeze(1)
        return intervention * jm, mask

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        return kl_divergence(context["target"].to(eq.sigma.dtype), eq.sigma)

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        kl = self.value(context, intervention, eq).mean()
        games, mask = self.induce(context, intervention)
        real = joint_mask(mask, games.shape[2:]).unsqueeze(1).expand_as(games)
        squared = (games - embed(games, mask)).pow(2) * real
        gauge = (squared.flatten(1).sum(dim=1) / real.flatten(1).sum(dim=1)).mean()
        return kl + self.options.mu * gauge, {"kl": float(kl.detach()), "gauge": float(gauge.detach())}

    def intervention_mask(self, context: Context) -> Tensor:
        """Real payoff entries ``[B, N, A..]``: every player's payoff at every real joint action."""
        mask = context["mask"]
        n_players, a_max = mask.shape[1], mask.shape[2]
        jm = joint_mask(mask, [a_max] * n_players).unsqueeze(1)
        return jm.expand(-1, n_players, *jm.shape[2:])

    def extra_plots(self, sampler: ContextSampler, generator: nn.Module,
                    solve: Callable[[Context, Tensor], Equilibrium], folder: Path) -> list[Path]:
        """3 x 2 games on the 2-simplex of player 1's marginal: target, equilibrium set, ME joint."""
        from did_inverse.simplex import simplex_figure

        return [simplex_figure(sampler, generator, self, solve, folder / "inverse_simplex.png")]

    def baseline_intervention(self, context: Context) -> Tensor:
        mask = context["mask"]
        n_players, a_max = mask.shape[1], mask.shape[2]
        return torch.zeros(mask.shape[0], n_players, *[a_max] * n_players, device=mask.device)
