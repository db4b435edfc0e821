"""Implicit differentiation of the eps-ME (C)CE solution map (SPEC section 4, exact block).

At the optimum ``sigma* = softmax(log target - D^T alpha*)`` and, on the active set
``S`` of rows with ``alpha_k > 0``, ``F_S(alpha_S, G) = D_S(G) sigma - eps_S(G) = 0``.
The implicit function theorem gives ``d alpha_S / dG = -(dF/dalpha_S)^{-1} dF/dG``
with ``dF/dalpha_S = -D_S Cov_sigma D_S^T``, so the vector-Jacobian product of a
cotangent ``v`` of ``sigma`` is

    w = -(D_S Cov D_S^T)^+ D_S Cov v,     grad_G = (d sigma/dG)^T v + (dF/dG)^T w,

both partial derivatives taken at fixed ``alpha`` by autograd. This differentiates
the solution map, not a solver's iterations, so any solver that returns the
optimal ``alpha`` (ECOS, the batched Newton method) shares it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from did_core.equilibria import Concept, Epsilon, constraints, joint_from_dual

__all__ = ["implicit_vjp", "active_rows"]


def active_rows(alpha: Tensor, rows: Tensor, rel_tol: float = 1e-7) -> Tensor:
    """Rows treated as binding, ``[B, K]``: real rows whose multiplier exceeds ``rel_tol * max(1, max alpha)``."""
    scale = alpha.detach().amax(dim=1, keepdim=True).clamp_min(1.0)
    return rows & (alpha.detach() > rel_tol * scale)


def _symmetric_solve(matrix: Tensor, rhs: Tensor, rel_tol: float = 1e-10) -> Tensor:
    """Minimum-norm solution of ``matrix x = rhs`` for batched symmetric PSD ``matrix [B, K, K]``."""
    values, vectors = torch.linalg.eigh(matrix)
    cutoff = rel_tol * values.abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
    inverse = torch.where(values > cutoff, 1.0 / values.clamp_min(1e-300), torch.zeros_like(values))
    coeffs = torch.einsum("bkj,bk->bj", vectors, rhs) * inverse
    return torch.einsum("bkj,bj->bk", vectors, coeffs)


def implicit_vjp(
    games: Tensor,
    mask: Tensor,
    concept: Concept,
    eps: Epsilon,
    alpha: Tensor,
    grad_sigma: Tensor,
) -> Tensor:
    """Gradient of ``<grad_sigma, sigma*(games)>`` with respect to ``games``.

    **Arguments:** ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``, optimal flat
    duals ``alpha [B, K]``, cotangent ``grad_sigma [B, J]`` (flat joints).

    **Returns:** ``[B, N, A_1..A_N]``.
    """
    with torch.enable_grad():
        g = games.detach().requires_grad_(True)
        fixed_alpha = alpha.detach()
        cons = constraints(g, mask, concept, eps)
        sigma = joint_from_dual(fixed_alpha, cons)
        residual = torch.einsum("bkj,bj->bk", cons.gains, sigma) - cons.eps

        active = active_rows(fixed_alpha, cons.rows).to(games.dtype)
        with torch.no_grad():
            d = cons.gains.detach() * active.unsqueeze(-1)
            s = sigma.detach()
            v = grad_sigma.reshape_as(s)
            d_sigma = d * s.unsqueeze(1)
            d_mean = d_sigma.sum(dim=2)
            # D_S Cov D_S^T with Cov = diag(s) - s s^T.
            hessian = torch.einsum("bkj,blj->bkl", d_sigma, d) - d_mean.unsqueeze(2) * d_mean.unsqueeze(1)
            hessian = hessian + torch.diag_embed(1.0 - active)
            cov_v = s * v - s * (s * v).sum(dim=1, keepdim=True)
            w = -_symmetric_solve(hessian, torch.einsum("bkj,bj->bk", d, cov_v)) * active
        objective = (sigma * v).sum() + (residual * w).sum()
        (grad,) = torch.autograd.grad(objective, g)
    return grad
