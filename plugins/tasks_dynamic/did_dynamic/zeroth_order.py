"""The published zeroth-order gradient estimator, as a policy block.

Forward: the exact optimum (``alpha = 0``) of the wrapped block. Backward: the occupancy's Jacobian is
estimated by random perturbations of the rewards, ``J^T g ~ mean_j <(x(R + sigma U_j) - x(R)) / sigma, g> U_j``
with ``U_j`` standard normal ``[S, A]``; the value's gradient is the occupancy (exact). Perturbing the rewards
``R = sum_i w_i r_i + b`` by ``sigma U`` is perturbing the boosts ``b`` by it, so through the chain rule this is the
estimator of the published code (perturb ``(w, b)``, re-solve, difference the occupancies), applied to every
problem of a batch independently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from did_core.policy import MDP, PolicyBlock, PolicySolution, TreeMDP, DiscountedMDP

__all__ = ["ZerothOrder"]


class _Estimated(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, rewards: Tensor, solve: Any, perturbations: int, sigma: float) -> Tensor:
        occupancy = solve(rewards)
        ctx.solve, ctx.perturbations, ctx.sigma = solve, perturbations, sigma
        ctx.save_for_backward(rewards, occupancy)
        return occupancy

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        rewards, occupancy = ctx.saved_tensors
        estimate = torch.zeros_like(rewards)
        for _ in range(ctx.perturbations):
            noise = torch.randn_like(rewards)
            moved = (ctx.solve(rewards + ctx.sigma * noise) - occupancy) / ctx.sigma
            estimate += (moved * grad).sum((-2, -1), keepdim=True) * noise
        return estimate / ctx.perturbations, None, None, None


class ZerothOrder(PolicyBlock):
    """The exact optimum, with the zeroth-order estimate of its Jacobian (``perturbations`` draws of size
    ``sigma``) as its backward pass. Solves whatever MDP ``inner`` (a block name) solves; ``alpha`` must be 0."""

    solves = (TreeMDP, DiscountedMDP)

    def __init__(self, inner: PolicyBlock, perturbations: int = 10, sigma: float = 0.01) -> None:
        if perturbations < 1 or not sigma > 0.0:
            raise ValueError(f"perturbations must be >= 1 and sigma > 0, got {perturbations}, {sigma}")
        self.inner, self.perturbations, self.sigma = inner, int(perturbations), float(sigma)

    def solve(self, mdp: MDP, rewards: Tensor, alpha: float) -> PolicySolution:
        if alpha != 0.0:
            raise ValueError("the zeroth-order block solves the exact problem (alpha = 0)")

        def exact(r: Tensor) -> Tensor:
            return self.inner(mdp, r, 0.0).occupancy

        with torch.no_grad():
            solution = self.inner(mdp, rewards.detach(), 0.0)
        occupancy = _Estimated.apply(rewards, exact, self.perturbations, self.sigma)
        # the value's gradient is the occupancy itself (the envelope theorem), so it needs no estimate
        return PolicySolution(solution.policy, occupancy, solution.q, (solution.occupancy * rewards).sum((-2, -1)))
