"""How an intervention is scored: the objective's induced games solved by one block, under one concept and
tolerance.

A :class:`Scorer` is everything evaluation, ``did design`` and the benchmarks need to
turn interventions into the designer's values, and nothing else (no sampler, no
generator): the same object solves a batch (:meth:`Scorer.solve`), scores many
contexts in chunks (:meth:`Scorer.values`) and polishes one context's intervention
by Nelder-Mead (:meth:`Scorer.polish`).

Shapes: a context is a batch (every tensor ``[B, ...]``); interventions ``x [B, ...]``
as a generator returns them; values ``[B]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from did_core.blocks import Equilibrium, EquilibriumBlock
from did_core.concepts import Concept
from did_core.convergence import SolveTally, counting
from did_core.equilibria import Epsilon
from did_core.tasks import Context, DesignObjective, index_context

__all__ = ["Scorer", "context_to"]


def context_to(context: Context, device: torch.device) -> Context:
    """Move every tensor of a context to ``device``."""
    return {k: v.to(device) for k, v in context.items()}


@dataclass(frozen=True)
class Scorer:
    """The designer's ``objective``, the ``block`` that solves its induced games, the ``concept`` and the
    tolerance ``eps``; ``device``: where contexts are moved to be solved."""

    objective: DesignObjective
    block: EquilibriumBlock
    concept: Concept
    eps: Epsilon
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def with_block(self, block: EquilibriumBlock) -> "Scorer":
        """The same scoring under another block."""
        return replace(self, block=block)

    def solve(self, context: Context, x: Tensor) -> Equilibrium:
        """The equilibria ``[B, ...]`` of the games that ``x [B, ...]`` induces in ``context``, solved in double
        precision (differentiable in ``x`` when the block is)."""
        games, mask = self.objective.induce(context, x)
        return self.block(games.double(), mask, concept=self.concept, eps=self.eps)

    def values(self, context: Context, x: Tensor, chunk: int = 64) -> tuple[Tensor, SolveTally]:
        """The designer's value ``[B]`` (float64, CPU) of ``x [B, ...]``, ``chunk`` contexts at a time, and the
        solves' convergence tally (the blocks' non-convergence warnings are counted, not shown)."""
        out, tally = [], SolveTally()
        for start in range(0, x.shape[0], chunk):
            part = context_to(index_context(context, slice(start, start + chunk)), self.device)
            xs = x[start:start + chunk].to(self.device)
            with torch.no_grad(), counting():
                eq = self.solve(part, xs)
                out.append(self.objective.value(part, xs, eq).double().cpu())
            tally.record(eq)
        return torch.cat(out), tally

    def value(self, context: Context, x: Tensor) -> float:
        """The designer's value of one context's intervention ``x [1, ...]``."""
        with torch.no_grad():
            return float(self.objective.value(context, x, self.solve(context, x))[0])

    def polish(self, context: Context, x: Tensor, budget: int, tally: SolveTally | None = None) -> Tensor:
        """Nelder-Mead (scipy) on one context's intervention ``x [1, ...]`` (its real entries only), from ``x``,
        at most ``budget`` evaluations; the best intervention found, never worse than ``x`` under the block.

        Each evaluation solves the induced game (non-convergence warnings silenced; ``tally`` counts them); an
        intervention the block cannot solve scores as the worst.
        """
        real = self.objective.intervention_mask(context)
        real = torch.ones_like(x, dtype=torch.bool) if real is None else real.expand_as(x)
        sign = 1.0 if self.objective.minimize else -1.0
        start = x[real].double().numpy()
        if start.size == 0:
            return x

        def loss(z: np.ndarray) -> float:
            candidate = x.clone()
            candidate[real] = torch.as_tensor(z, dtype=x.dtype)
            with torch.no_grad(), counting():
                try:
                    eq = self.solve(context, candidate)
                except (RuntimeError, ValueError):
                    return float("inf")
                if tally is not None:
                    tally.record(eq)
                return sign * float(self.objective.value(context, candidate, eq)[0])

        res = minimize(loss, start, method="Nelder-Mead",
                       options={"maxfev": budget, "xatol": 1e-6, "fatol": 1e-9, "adaptive": start.size > 8})
        best = x.clone()
        if res.fun <= loss(start):
            best[real] = torch.as_tensor(res.x, dtype=x.dtype)
        return best
