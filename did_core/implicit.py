"""Implicit differentiation of the eps-ME (C)CE solution map (docs/mathematics.md, section 4.4).

At the optimum ``sigma* = softmax(log target - D^T alpha*)`` and, on the active set
``S`` of rows with ``alpha_k > 0``, ``F_S(alpha_S, G) = D_S(G) sigma - eps_S(G) = 0``.
The implicit function theorem gives ``d alpha_S / dG = -(dF/dalpha_S)^{-1} dF/dG``
with ``dF/dalpha_S = -D_S Cov_sigma D_S^T``, so the vector-Jacobian product of a
cotangent ``v`` of ``sigma`` is

    w = -(D_S Cov D_S^T)^+ D_S Cov v,     grad_G = (d sigma/dG)^T v + (dF/dG)^T w,

both partial derivatives taken at fixed ``alpha``. This differentiates the solution
map, not a solver's iterations, so any solver that returns the optimal ``alpha``
(ECOS, the batched Newton method) shares it.

At fixed ``alpha`` the derivative with respect to the gains is rank two,
``dL/dD = w sigma^T - alpha (Cov u)^T`` with ``u = v + D^T w``, so the gradient is that
of the scalar ``w . D(G) sigma - alpha . D(G) Cov u - w . eps(G)`` in ``G``: two
products of the rows with a joint, which the concept's operator
(:mod:`did_core.concepts`) computes from the payoffs, for the built-in concepts in
``O(B N A J)`` without forming the ``[B, K, J]`` rows. Only the ``[B, M, M]`` Hessian
of the ``M`` active rows is formed. Nothing here depends on which concept it is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.equilibria import Epsilon

__all__ = ["implicit_vjp", "active_rows", "pinv_solve"]


def active_rows(alpha: Tensor, rows: Tensor, rel_tol: float = 1e-7) -> Tensor:
    """Rows treated as binding, ``[B, K]``: real rows whose multiplier exceeds ``rel_tol * max(1, max alpha)``."""
    scale = alpha.detach().amax(dim=1, keepdim=True).clamp_min(1.0)
    return rows & (alpha.detach() > rel_tol * scale)


def pinv_solve(matrix: Tensor, rhs: Tensor, valid: Tensor, rel_tol: float = 1e-10) -> Tensor:
    """Minimum-norm solution of ``matrix x = rhs`` on the ``valid`` block of batched symmetric PSD ``matrix``.

    **Arguments:** ``matrix [B, M, M]``, ``rhs [B, M]``, ``valid [B, M]`` (bool). Invalid
    entries get ``x = 0``; eigenvalues below ``rel_tol`` times the largest are dropped.
    Well-conditioned systems (Cholesky pivots above ``sqrt(rel_tol)`` times the largest
    diagonal entry) are solved by Cholesky, the others by an eigendecomposition.
    """
    pair = valid.unsqueeze(2) & valid.unsqueeze(1)
    filled = torch.where(pair, matrix, torch.zeros_like(matrix))
    top = filled.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1e-300)
    filled = filled + torch.diag_embed(torch.where(valid, torch.zeros_like(rhs), top.unsqueeze(1).expand_as(rhs)))
    rhs = torch.where(valid, rhs, torch.zeros_like(rhs))
    factor, info = torch.linalg.cholesky_ex(filled)
    pivots = factor.diagonal(dim1=1, dim2=2).square()
    easy = (info == 0) & (pivots.amin(dim=1) > math.sqrt(rel_tol) * top)
    out = torch.cholesky_solve(rhs.unsqueeze(2), factor).squeeze(2)
    hard = torch.nonzero(~easy).squeeze(1)
    if hard.numel():  # one host synchronisation; rare (near-singular active sets)
        values, vectors = torch.linalg.eigh(filled.index_select(0, hard))
        cutoff = rel_tol * values.abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
        inverse = torch.where(values > cutoff, 1.0 / values.clamp_min(1e-300), torch.zeros_like(values))
        coeffs = torch.einsum("bkj,bk->bj", vectors, rhs.index_select(0, hard)) * inverse
        out = out.index_copy(0, hard, torch.einsum("bkj,bj->bk", vectors, coeffs))
    return out * valid


def implicit_vjp(
    games: Tensor,
    mask: Tensor,
    concept: Concept,
    eps: Epsilon,
    alpha: Tensor,
    grad_sigma: Tensor,
) -> Tensor:
    """Gradient of ``<grad_sigma, sigma*(games)>`` with respect to ``games``.

    **Arguments:** ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``, the ``concept``, optimal flat
    duals ``alpha [B, K]``, cotangent ``grad_sigma [B, J]`` (flat joints).

    **Returns:** ``[B, N, A_1..A_N]`` in the dtype of ``games`` (computed in float64 at
    least: the pseudo-inverse's cutoff needs it).
    """
    dtype = torch.promote_types(games.dtype, torch.float64)
    payoffs = games.detach().to(dtype)
    with torch.no_grad():
        op = concept.operator(payoffs, mask)
        fixed_alpha = alpha.detach().to(dtype) * op.real
        sigma = torch.softmax(op.log_target() - op.transpose(fixed_alpha), dim=1)
        v = grad_sigma.detach().reshape_as(sigma).to(dtype)
        cov_v = sigma * v - sigma * (sigma * v).sum(dim=1, keepdim=True)
        active = active_rows(fixed_alpha, op.real)
        m = int(active.sum(dim=1).amax()) if active.numel() else 0
        w = torch.zeros_like(fixed_alpha)
        if m:
            index = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :m]
            valid = active.gather(1, index)
            d = op.rows(index) * valid.unsqueeze(2)  # [B, M, J]
            centred = (d - torch.bmm(d, sigma.unsqueeze(2))) * sigma.sqrt().unsqueeze(1)
            # D_S Cov D_S^T with Cov = diag(s) - s s^T.
            hessian = torch.bmm(centred, centred.transpose(1, 2))
            w_s = -pinv_solve(hessian, torch.bmm(d, cov_v.unsqueeze(2)).squeeze(2), valid)
            w = w.scatter(1, index, w_s)
        u = v + op.transpose(w)
        cov_u = sigma * u - sigma * (sigma * u).sum(dim=1, keepdim=True)
    with torch.enable_grad():
        g = payoffs.requires_grad_(True)
        op_g = concept.operator(g, mask)
        surrogate = ((w * op_g.regrets(sigma)).sum() - (fixed_alpha * op_g.regrets(cov_u)).sum()
                     - (w * op_g.eps_rows(g, mask, eps)).sum())
        (grad,) = torch.autograd.grad(surrogate, g)
    return grad.to(games.dtype)
