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
products of the gains with a joint, which :class:`GainOperator` computes from the
payoffs in ``O(B N A J)`` without forming the ``[B, K, J]`` gain tensor (for CE that
tensor is ``A`` times larger than the game). Only the ``[B, M, M]`` Hessian of the
``M`` active rows is formed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from did_core.equilibria import Concept, Epsilon
from did_core.games import action_shape, joint_mask

__all__ = ["implicit_vjp", "active_rows", "GainOperator", "pinv_solve"]


class GainOperator:
    """Products with the stacked deviation gains ``D [B, K, J]`` of a batch, without forming ``D``.

    Row and joint layouts are those of ``did_core.equilibria.constraints`` (rows
    ``(p, d)`` for CCE, ``(p, r, d)`` for CE, padded to ``A_max``; joints in C order
    of ``[A_1..A_N]``), and every product equals the one with the dense gains,
    padded rows and joint actions included. Differentiable in ``games``.

    **Arguments:** ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``, ``concept``.
    """

    def __init__(self, games: Tensor, mask: Tensor, concept: Concept) -> None:
        self.sizes = action_shape(games)
        self.concept = concept
        self.batch, self.n_players = games.shape[:2]
        self.a_max = max(self.sizes)
        self.joints = math.prod(self.sizes)
        self.joint = joint_mask(mask, self.sizes).reshape(self.batch, self.joints)
        self.dtype, self.device = games.dtype, games.device
        weights = self.joint.to(games.dtype)
        # Per player p: G_p with p's own axis first, [B, A_p, J / A_p], zero on padded joint actions.
        self._own = [self._own_first(games[:, p].reshape(self.batch, self.joints) * weights, p)
                     for p in range(self.n_players)]
        if concept == "ce":
            real = mask[:, :, :, None] & mask[:, :, None, :]
            real = real & ~torch.eye(self.a_max, dtype=torch.bool, device=games.device)
        else:
            real = mask
        self.real = real.flatten(1)
        self.rows_per_player = self.real.shape[1] // self.n_players

    @property
    def n_rows(self) -> int:
        """``K``, the number of (padded) constraint rows."""
        return self.real.shape[1]

    def log_target(self) -> Tensor:
        """Uniform log target over real joint actions, ``-inf`` elsewhere, ``[B, J]``."""
        count = self.joint.sum(dim=1, keepdim=True).to(self.dtype)
        return torch.where(self.joint, -torch.log(count), torch.full_like(count, -math.inf))

    def eps_rows(self, games: Tensor, mask: Tensor, eps: Epsilon) -> Tensor:
        """Per-row tolerance ``[B, K]`` (0 on padded rows), differentiable in ``games``."""
        return eps.per_player(games, mask).repeat_interleave(self.rows_per_player, dim=1) * self.real

    def scale(self) -> Tensor:
        """The largest |gain| of each game, ``[B]`` (the range of a player's payoff over its own actions)."""
        out = torch.zeros(self.batch, dtype=self.dtype, device=self.device)
        for p, own in enumerate(self._own):
            real = self._own_first(self.joint, p)
            high = torch.where(real, own, torch.full_like(own, -math.inf)).amax(dim=1)
            low = torch.where(real, own, torch.full_like(own, math.inf)).amin(dim=1)
            spread = torch.where(torch.isfinite(high), high - low, torch.zeros_like(high))
            out = torch.maximum(out, spread.amax(dim=1) if spread.shape[1] else out)
        return out

    def _own_first(self, flat: Tensor, p: int) -> Tensor:
        """``[..., J]`` joint tensor to ``[..., A_p, J / A_p]`` (player p's axis first)."""
        lead = flat.shape[:-1]
        x = flat.reshape(*lead, *self.sizes).movedim(len(lead) + p, len(lead))
        return x.reshape(*lead, self.sizes[p], self.joints // self.sizes[p])

    def _joint_from_own(self, own: Tensor, p: int) -> Tensor:
        """Inverse of :meth:`_own_first`: ``[..., A_p, J / A_p]`` to ``[..., J]``."""
        lead = own.shape[:-2]
        rest = [s for q, s in enumerate(self.sizes) if q != p]
        x = own.reshape(*lead, self.sizes[p], *rest).movedim(len(lead), len(lead) + p)
        return x.reshape(*lead, self.joints)

    def regrets(self, x: Tensor) -> Tensor:
        """``D x``, ``[B, K]``, for joints ``x [B, J]`` (expected deviation gains when ``x = sigma``)."""
        x = x * self.joint
        out = []
        for p, own in enumerate(self._own):
            size = self.sizes[p]
            xp = self._own_first(x, p)
            current = (xp * own).sum(dim=2)  # [B, A_p]: sum_{a_-p} x(r, a_-p) G_p(r, a_-p)
            if self.concept == "ce":
                block = torch.bmm(xp, own.transpose(1, 2)) - current.unsqueeze(2)  # [B, r, d]
                block = torch.nn.functional.pad(block, (0, self.a_max - size, 0, self.a_max - size))
            else:
                block = torch.bmm(own, xp.sum(dim=1).unsqueeze(2)).squeeze(2) - current.sum(dim=1, keepdim=True)
                block = torch.nn.functional.pad(block, (0, self.a_max - size))
            out.append(block.flatten(1))
        return torch.cat(out, dim=1) * self.real

    def transpose(self, alpha: Tensor) -> Tensor:
        """``D^T alpha``, ``[B, J]``, for row weights ``alpha [B, K]`` (zero on padded joint actions)."""
        alpha = (alpha * self.real).reshape(self.batch, self.n_players, self.rows_per_player)
        out = torch.zeros(self.batch, self.joints, dtype=alpha.dtype, device=alpha.device)
        for p, own in enumerate(self._own):
            size = self.sizes[p]
            if self.concept == "ce":
                weights = alpha[:, p].reshape(self.batch, self.a_max, self.a_max)[:, :size, :size]  # [B, r, d]
                contrib = torch.bmm(weights, own) - weights.sum(dim=2, keepdim=True) * own
            else:
                weights = alpha[:, p, :size]  # [B, d]
                contrib = torch.bmm(weights.unsqueeze(1), own) - weights.sum(dim=1).view(-1, 1, 1) * own
            out = out + self._joint_from_own(contrib, p)
        return out * self.joint

    def rows(self, index: Tensor, games: Tensor | None = None) -> Tensor:
        """The gain rows ``D[g, index[b, m], :]``, ``[B', M, J]``, for ``index [B', M]`` (long) of the games
        ``g = games[b]`` (``games [B']`` long; every game of the batch when ``None``)."""
        pick = (lambda x: x) if games is None else (lambda x: x.index_select(0, games))  # noqa: E731
        batch, m = index.shape
        player = index // self.rows_per_player
        within = index % self.rows_per_player
        out = None
        for p, own in enumerate(self._own):
            own = pick(own)
            size, rest = self.sizes[p], own.shape[2]
            take = lambda i: own.gather(1, i.unsqueeze(2).expand(-1, -1, rest))  # noqa: E731
            if self.concept == "ce":
                rec, dev = (within // self.a_max).clamp_max(size - 1), (within % self.a_max).clamp_max(size - 1)
                # Row (r, d) is G_p(d, a_-p) - G_p(r, a_-p) on the slice a_p = r, zero elsewhere.
                row = torch.zeros(batch, m, size, rest, dtype=own.dtype, device=own.device)
                row.scatter_(2, rec.view(batch, m, 1, 1).expand(-1, -1, 1, rest), (take(dev) - take(rec)).unsqueeze(2))
            else:
                row = take(within.clamp_max(size - 1)).unsqueeze(2) - own.unsqueeze(1)
            row = self._joint_from_own(row, p)
            out = row if out is None else torch.where((player == p).unsqueeze(2), row, out)
        assert out is not None
        out = out.mul_(pick(self.joint).to(out.dtype).unsqueeze(1))
        return out.mul_(pick(self.real).gather(1, index).to(out.dtype).unsqueeze(2))


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

    **Arguments:** ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``, optimal flat
    duals ``alpha [B, K]``, cotangent ``grad_sigma [B, J]`` (flat joints).

    **Returns:** ``[B, N, A_1..A_N]`` in the dtype of ``games`` (computed in float64 at
    least: the pseudo-inverse's cutoff needs it).
    """
    dtype = torch.promote_types(games.dtype, torch.float64)
    payoffs = games.detach().to(dtype)
    with torch.no_grad():
        op = GainOperator(payoffs, mask, concept)
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
        op_g = GainOperator(g, mask, concept)
        surrogate = ((w * op_g.regrets(sigma)).sum() - (fixed_alpha * op_g.regrets(cov_u)).sum()
                     - (w * op_g.eps_rows(g, mask, eps)).sum())
        (grad,) = torch.autograd.grad(surrogate, g)
    return grad.to(games.dtype)
