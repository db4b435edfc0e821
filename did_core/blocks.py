"""The equilibrium-block interface (docs/mathematics.md, section 4).

A block maps a batch of games ``[B, N, A_1..A_N]``, an action mask ``[B, N, A_max]``, a tolerance and a concept
to the eps-maximum-entropy (C)CE, differentiably in the payoffs. The leading
axis is always the batch: a single game is passed as ``games.unsqueeze(0)``.

Two kinds of block exist:

* ``DualSolverBlock``: solves the dual to optimality; its backward pass is the
  implicit differentiation of ``did_core.implicit`` (shared by every exact solver).
* any other ``EquilibriumBlock`` (a learned block) is differentiated by autograd.

Every block reports per game, in ``Equilibrium.info``: ``gap``, ``violation``,
``entropy`` and ``active`` (rows with a positive multiplier, when it has duals).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from did_core.equilibria import (
    Concept,
    Constraints,
    Epsilon,
    active_count,
    check_concept,
    constraints,
    entropy,
    gap,
    violation,
)
from did_core.games import check_games
from did_core.implicit import implicit_vjp

__all__ = ["Equilibrium", "EquilibriumBlock", "DualSolverBlock", "SolverOutput"]


@dataclass
class Equilibrium:
    """A block's answer for a batch.

    ``sigma [B, A_1..A_N]`` (zero on padded joint actions); ``alpha`` the
    structured duals ``[B, N, A_max]`` (CCE) or ``[B, N, A_max, A_max]`` (CE), or
    ``None``; ``eps [B, N]`` the tolerance used per player; ``info`` per-game
    diagnostics, each ``[B]``.
    """

    sigma: Tensor
    alpha: Tensor | None
    eps: Tensor
    concept: Concept
    info: dict[str, Tensor] = field(default_factory=dict)


class EquilibriumBlock(ABC):
    """Base class of every block: validates input, solves, reports quality.

    Subclasses implement :meth:`solve`. Options a block takes are given to its
    constructor (the factory registered through ``did_register_blocks``).
    """

    name: str = "block"

    def __call__(
        self,
        games: Tensor,
        mask: Tensor | None = None,
        *,
        concept: str = "cce",
        eps: Epsilon | float = 0.05,
    ) -> Equilibrium:
        mask = check_games(games, mask)
        concept_name = check_concept(concept)
        epsilon = Epsilon.of(eps)
        cons = constraints(games.detach(), mask, concept_name, epsilon)
        eq = self.solve(games, mask, concept_name, epsilon, cons)
        with torch.no_grad():
            flat = eq.sigma.detach().reshape(games.shape[0], -1)
            eq.info.setdefault("gap", gap(flat, cons))
            eq.info.setdefault("violation", violation(flat, cons))
            eq.info.setdefault("entropy", entropy(flat))
            if eq.alpha is not None:
                eq.info.setdefault("active", active_count(eq.alpha.detach().reshape(games.shape[0], -1), cons))
        return eq

    @abstractmethod
    def solve(
        self, games: Tensor, mask: Tensor, concept: Concept, eps: Epsilon, cons: Constraints
    ) -> Equilibrium:
        """Solve a validated batch. ``cons`` is the constraint system of the detached games."""


@dataclass
class SolverOutput:
    """What a dual solver returns for a batch: flat ``sigma [B, J]``, flat ``alpha [B, K]``, per-game info."""

    sigma: Tensor
    alpha: Tensor
    info: dict[str, Any] = field(default_factory=dict)


class _ImplicitSolve(torch.autograd.Function):
    """``sigma = solver(games)`` with the implicit-function backward."""

    @staticmethod
    def forward(ctx: Any, games: Tensor, block: "DualSolverBlock", mask: Tensor, concept: Concept,
                eps: Epsilon, cons: Constraints, out: list[SolverOutput]) -> Tensor:  # noqa: D102
        result = block.solve_dual(games.detach(), mask, concept, eps, cons)
        out.append(result)
        ctx.save_for_backward(games.detach(), mask, result.alpha)
        ctx.concept, ctx.eps = concept, eps
        return result.sigma

    @staticmethod
    def backward(ctx: Any, grad_sigma: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        games, mask, alpha = ctx.saved_tensors
        grad = implicit_vjp(games, mask, ctx.concept, ctx.eps, alpha, grad_sigma)
        return grad, None, None, None, None, None, None


class DualSolverBlock(EquilibriumBlock):
    """A block that solves the eps-ME program to optimality and returns its duals.

    Subclasses implement :meth:`solve_dual` on detached games; gradients come from
    implicit differentiation of the optimality conditions, never from iterations.
    """

    @abstractmethod
    def solve_dual(
        self, games: Tensor, mask: Tensor, concept: Concept, eps: Epsilon, cons: Constraints
    ) -> SolverOutput:
        """Solve every game of the batch; flag (never hide) games that did not converge."""

    def solve(
        self, games: Tensor, mask: Tensor, concept: Concept, eps: Epsilon, cons: Constraints
    ) -> Equilibrium:
        out: list[SolverOutput] = []
        sigma = _ImplicitSolve.apply(games, self, mask, concept, eps, cons, out)
        result = out[0]
        info = {k: v if isinstance(v, Tensor) else torch.as_tensor(v) for k, v in result.info.items()}
        return Equilibrium(
            sigma=cons.unflatten_joint(sigma),
            alpha=cons.unflatten_dual(result.alpha),
            eps=eps.per_player(games.detach(), mask),
            concept=concept,
            info=info,
        )
