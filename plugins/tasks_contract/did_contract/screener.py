"""The bonus screener: a contract generator that learns what each bonus would gain, and pays the best one.

Why not a network that outputs payments directly (:class:`~did_contract.generator.ContractGenerator`)?
No contract is a strict local maximum of the principal's utility in most contexts
(every small payment only costs); the contracts that pay are bonuses of the right
size on the right outcome, often in a narrow band of sizes, and mostly in games of
2..5 actions. Trained through the block, a payment network follows the gradient
back to zero and pays nothing. Regressed on the per-instance search's contracts, it
averages bonuses that do not agree and pays a blur that steers nobody.

The screener instead scores every member of one family, a bonus of
``scales[s] x (max v - min v)`` on outcome ``w`` paid to one agent or to every
agent (:func:`~did_contract.search.bonus_grid`, ``[B, R, S, M]``), with the same
equivariant network (its head has a channel per scale, for one agent and for every
agent), and learns those scores from what each bonus really changes under the exact
block (:func:`~did_contract.search.bonus_gains`): the training's imitation phase
(``did train --imitation-contexts K --imitation-steps S``, :mod:`did_core.imitation`)
computes the gains of every bonus on ``K`` contexts and regresses the scores on them,
in tenths of the value span and with every loss beyond ``clip`` counted as ``clip``
(how bad a bad bonus is does not matter, which one is best does).

* Evaluated (``eval()``): the bonus of the highest score where that score is above
  ``threshold``, else no contract; exactly one bonus or nothing, per context. With
  ``proposals = k`` the ``k`` best-scored bonuses and no contract are solved under the
  run's exact block, concept and eps (bound by ``did train`` and every loader,
  :func:`did_core.components.build_task_parts`) and the best of them is the answer:
  ``k + 1`` solves per context, a design through the exact block that is never worse
  than no contract there.
* Trained through the block (``train()``, the steps after the imitation phase): the
  softmax mixture of every bonus and no contract (score ``threshold``) at
  ``temperature``, so the loss has a gradient.

Permuting an agent's actions leaves the contract unchanged; permuting agents or outcomes permutes it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import EquilibriumBlock
from did_core.concepts import Concept
from did_core.equilibria import Epsilon
from did_core.nn import O2O
from did_core.tasks import Context, ContextSampler
from did_contract.generator import ContractGenerator
from did_contract.search import SCALES, bonus_gains, bonus_grid, screen_contracts
from did_contract.task import real_range

__all__ = ["BonusScreener"]


def _unit(context: Context) -> Tensor:
    """A tenth of the value span per context ``[B, 1, 1, 1]`` (the scores' unit; at least 1e-6)."""
    span = real_range(context["values"].double(), context["outcome_mask"])
    return (span / 10).clamp_min(1e-6).view(-1, 1, 1, 1)


class BonusScreener(ContractGenerator):
    """Scores every bonus (:func:`~did_contract.search.bonus_grid`) and pays the best (see the module docstring)."""

    class Options(ContractGenerator.Options):
        size_features: bool = Field(True, description="1 / action count and 1 / outcome count as input channels")
        threshold: float = Field(0.5, description="pay only a bonus whose score (its predicted gain, in tenths of "
                                 "the value span) is above this")
        temperature: float = Field(0.25, gt=0, description="the softmax temperature of the mixture trained "
                                   "through the block")
        proposals: int = Field(0, ge=0, le=4096, description="evaluated: the best this many bonuses and no "
                               "contract solved under the exact block, the best kept (0: the best bonus above "
                               "threshold, no solve)")
        clip: float = Field(1.0, gt=0, description="losses of a bonus beyond this (tenths of the value span) count "
                            "as this in the imitation loss")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"width": 32, "depth": 2, "depth_outcome": 1},
        "paper": {"width": 32, "depth": 2, "depth_outcome": 2},
    }
    #: The bonus sizes scored, as fractions of the value span.
    scales: ClassVar[tuple[float, ...]] = SCALES

    def __init__(self, sampler: ContextSampler | None = None, **options: Any) -> None:
        super().__init__(sampler, **options)
        self.head = O2O(self.options.width, 2 * len(self.scales), self.options.aggregation, activation=None)
        self._exact: tuple[EquilibriumBlock, Concept, Epsilon] | None = None

    def bind_exact(self, block: EquilibriumBlock, concept: Concept, eps: Epsilon) -> None:
        """The exact block, concept and tolerance the ``proposals`` are checked under."""
        self._exact = (block, concept, eps)

    def scores(self, context: Context) -> Tensor:
        """The predicted gain of every bonus ``[B, R, S, M]`` in tenths of the value span, ``-inf`` on padded
        outcomes (``R = N + 1``: each agent, then every agent; 1 for one agent)."""
        out = self.head_output(context)  # [B, 2S, N, M]
        n_scales, n_agents = len(self.scales), out.shape[2]
        own = out[:, :n_scales].transpose(1, 2)  # [B, N, S, M]
        parts = [own] if n_agents == 1 else [own, out[:, n_scales:].mean(dim=2, keepdim=True).transpose(1, 2)]
        scores = torch.cat(parts, dim=1)
        real = context["outcome_mask"].to(torch.bool).view(out.shape[0], 1, 1, -1)
        return torch.where(real, scores, torch.full_like(scores, -torch.inf))

    def forward(self, context: Context) -> Tensor:
        """Contracts ``[B, N, M]``: the best-scored bonus above ``threshold`` or none (``eval()``), or the
        softmax mixture of every bonus and none (``train()``)."""
        scores = self.scores(context).flatten(1)
        grid = bonus_grid(context, self.scales).flatten(1, 3).to(scores.dtype)  # [B, K, N, M]
        o = self.options
        if self.training:
            none = torch.full_like(scores[:, :1], o.threshold)
            weights = torch.softmax(torch.cat([none, scores], dim=1) / o.temperature, dim=1)[:, 1:]
            return torch.einsum("bk,bknm->bnm", weights, grid)
        if o.proposals:
            return self._checked(context, scores, grid)
        best, index = scores.max(dim=1)
        chosen = grid[torch.arange(len(index), device=index.device), index]
        return torch.where((best > o.threshold).view(-1, 1, 1), chosen, torch.zeros_like(chosen))

    def _checked(self, context: Context, scores: Tensor, grid: Tensor) -> Tensor:
        """The best under the exact block of no contract and the ``proposals`` best-scored bonuses ``[B, N, M]``."""
        if self._exact is None:
            raise RuntimeError("BonusScreener with proposals needs bind_exact(block, concept, eps) first "
                               "(did_core.components.build_task_parts binds the run's)")
        block, concept, eps = self._exact
        top = scores.topk(min(self.options.proposals, scores.shape[1]), dim=1)
        rows = torch.arange(len(scores), device=scores.device).unsqueeze(1)
        candidates = torch.cat([torch.zeros_like(grid[:, :1]), grid[rows, top.indices]], dim=1).double()
        valid = torch.cat([torch.ones_like(top.values[:, :1], dtype=torch.bool), top.values.isfinite()], dim=1)
        double = {k: v.double() if v.is_floating_point() else v for k, v in context.items()}
        with torch.no_grad():
            utility, _ = screen_contracts(block, double, candidates, valid, concept, eps)
        best = utility.argmax(dim=1)
        keep = (utility[rows.view(-1), best] > utility[:, 0]) & utility[:, 0].isfinite()
        chosen = candidates[rows.view(-1), best].to(grid.dtype)
        return torch.where(keep.view(-1, 1, 1), chosen, torch.zeros_like(chosen))

    def imitation_targets(self, context: Context, block: EquilibriumBlock, concept: Concept,
                          eps: Epsilon) -> Tensor:
        """What each bonus changes under ``block`` ``[B, R, S, M]`` in tenths of the value span (NaN: not real)."""
        return bonus_gains(context, block, concept, eps, self.scales) / _unit(context)

    def imitation_loss(self, context: Context, targets: Tensor) -> Tensor:
        """Mean squared difference ``[B]`` of the scores and ``targets`` (rows of :meth:`imitation_targets`,
        cut to the context's outcomes) over the real bonuses, both clipped below at ``-clip``."""
        scores = self.scores(context)
        targets = targets[..., :scores.shape[-1]].to(scores.dtype)
        real = targets.isfinite() & scores.isfinite()
        clip = self.options.clip
        diff = scores.clamp_min(-clip) - torch.nan_to_num(targets, nan=0.0).clamp_min(-clip)
        squared = torch.where(real, diff, torch.zeros_like(diff)) ** 2
        return squared.flatten(1).sum(dim=1) / real.flatten(1).sum(dim=1).clamp_min(1)
