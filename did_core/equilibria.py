"""Deviation gains, (C)CE constraints, the eps-ME dual and quality measures (docs/mathematics.md, sections 2-3).

Everything is batched and masked (see ``did_core.games`` for the conventions).
Constraint rows are laid out per player with padding, so the dual variable of a
batch has a fixed structured shape:

* CCE: ``alpha [B, N, A_max]`` -- row ``(p, d)``: player ``p`` deviates to ``d``.
* CE:  ``alpha [B, N, A_max, A_max]`` -- row ``(p, r, d)``: told ``r``, plays ``d``.

Flattened, rows form ``K = N * A_max`` (CCE) or ``K = N * A_max**2`` (CE) and
joint actions ``J = prod_p A_p``. Rows that are padded (an unreal ``r`` or ``d``,
or ``r == d`` for CE) are flagged false in ``Constraints.rows`` and are all-zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from did_core.games import action_shape, joint_mask, player_scale

__all__ = [
    "Concept",
    "CONCEPTS",
    "check_concept",
    "Epsilon",
    "dual_mask",
    "deviation_gains",
    "Constraints",
    "constraints",
    "dual_logits",
    "joint_from_dual",
    "dual_objective",
    "regrets",
    "masked_row_max",
    "gap",
    "violation",
    "entropy",
    "kl_divergence",
    "active_count",
]

Concept = Literal["ce", "cce"]
CONCEPTS: tuple[str, ...] = ("ce", "cce")


def check_concept(concept: str) -> Concept:
    """Return ``concept`` lower-cased, or raise ``ValueError`` naming the known ones."""
    name = str(concept).lower()
    if name not in CONCEPTS:
        raise ValueError(f"unknown concept {concept!r}; known: {', '.join(CONCEPTS)}")
    return name  # type: ignore[return-value]


@dataclass(frozen=True)
class Epsilon:
    """The equilibrium tolerance: ``eps_p = value * s_p(G)`` when relative, else ``value``."""

    value: float = 0.05
    relative: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.value, (int, float)) and math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"eps must be a finite number > 0, got {self.value!r}")

    @classmethod
    def of(cls, eps: "Epsilon | float") -> "Epsilon":
        """Accept an ``Epsilon`` or a bare number (relative)."""
        return eps if isinstance(eps, Epsilon) else cls(float(eps))

    def per_player(self, games: Tensor, mask: Tensor) -> Tensor:
        """Per-player tolerance ``[B, N]`` (differentiable in ``games`` when relative)."""
        if self.relative:
            return self.value * player_scale(games, mask)
        return torch.full(games.shape[:2], self.value, dtype=games.dtype, device=games.device)


def dual_mask(mask: Tensor, concept: Concept) -> Tensor:
    """Real constraint rows (dual entries) of a batch with action mask ``mask [B, N, A]``.

    **Returns:** CCE ``[B, N, A]`` (``d`` real); CE ``[B, N, A, A]`` (``r`` and ``d``
    real and ``r != d``).
    """
    if concept == "cce":
        return mask
    off_diagonal = ~torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
    return mask.unsqueeze(-1) & mask.unsqueeze(-2) & off_diagonal


def deviation_gains(games: Tensor, mask: Tensor, concept: Concept) -> Tensor:
    """Deviation gains of every player, zero on padded rows and padded joint actions.

    **Arguments:** ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``.

    **Returns:** CCE ``[B, N, A_max(d), A_1..A_N]`` with
    ``D_p(d, a) = G_p[d, a_{-p}] - G_p[a]``; CE ``[B, N, A_max(r), A_max(d), A_1..A_N]``
    with ``D_p(r, d, a) = 1[a_p = r] (G_p[d, a_{-p}] - G_p[a])``.
    """
    sizes = action_shape(games)
    n_players, a_max = len(sizes), max(sizes)
    jm = joint_mask(mask, sizes).unsqueeze(1)
    per_player = []
    for p, size in enumerate(sizes):
        g = games[:, p]
        deviated = g.movedim(1 + p, 1).unsqueeze(2 + p)
        gain = (deviated - g.unsqueeze(1)) * jm
        if concept == "ce":
            recommended = torch.eye(size, dtype=games.dtype, device=games.device)
            view = [1, size, 1] + [1] * n_players
            view[3 + p] = size
            gain = gain.unsqueeze(1) * recommended.reshape(view)
            gain = _pad_axis(_pad_axis(gain, 1, a_max), 2, a_max)
        else:
            gain = _pad_axis(gain, 1, a_max)
        real = dual_mask(mask, concept)[:, p]
        per_player.append(gain * real.reshape(*real.shape, *([1] * n_players)))
    return torch.stack(per_player, dim=1)


def _pad_axis(x: Tensor, axis: int, length: int) -> Tensor:
    missing = length - x.shape[axis]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[axis] = missing
    return torch.cat([x, x.new_zeros(shape)], dim=axis)


@dataclass
class Constraints:
    """The stacked eps-(C)CE constraints of a batch, flattened over rows and joint actions.

    ``gains [B, K, J]``, ``rows [B, K]`` (real rows), ``eps [B, K]`` (0 on padded
    rows), ``joint [B, J]`` (real joint actions), ``log_target [B, J]`` (uniform over
    real joint actions, ``-inf`` elsewhere), ``row_player [K]`` (which player owns a row).
    """

    gains: Tensor
    rows: Tensor
    eps: Tensor
    joint: Tensor
    log_target: Tensor
    row_player: Tensor
    concept: Concept
    sizes: tuple[int, ...]

    @property
    def dual_shape(self) -> tuple[int, ...]:
        """Structured shape of one game's dual: ``(N, A)`` for CCE, ``(N, A, A)`` for CE."""
        n, a = len(self.sizes), max(self.sizes)
        return (n, a, a) if self.concept == "ce" else (n, a)

    def unflatten_dual(self, alpha: Tensor) -> Tensor:
        """``[B, K]`` to ``[B, *dual_shape]``."""
        return alpha.reshape(alpha.shape[0], *self.dual_shape)

    def unflatten_joint(self, sigma: Tensor) -> Tensor:
        """``[B, J]`` to ``[B, A_1..A_N]``."""
        return sigma.reshape(sigma.shape[0], *self.sizes)


def constraints(games: Tensor, mask: Tensor, concept: Concept, eps: Epsilon) -> Constraints:
    """Build the flattened constraint system of a batch (differentiable in ``games``)."""
    sizes = action_shape(games)
    batch, n_players = games.shape[:2]
    gains = deviation_gains(games, mask, concept)
    rows_per_player = gains[0, 0].numel() // math.prod(sizes)
    flat_gains = gains.reshape(batch, n_players * rows_per_player, -1)
    rows = dual_mask(mask, concept).reshape(batch, -1)
    eps_rows = eps.per_player(games, mask).repeat_interleave(rows_per_player, dim=1) * rows
    jm = joint_mask(mask, sizes).reshape(batch, -1)
    count = jm.sum(dim=1, keepdim=True).to(games.dtype)
    log_target = torch.where(jm, -torch.log(count), torch.full_like(count, -math.inf))
    row_player = torch.arange(n_players, device=games.device).repeat_interleave(rows_per_player)
    return Constraints(flat_gains, rows, eps_rows, jm, log_target, row_player, concept, sizes)


def dual_logits(alpha: Tensor, cons: Constraints) -> Tensor:
    """``log target(a) - sum_k alpha_k D_k(a)``, shape ``[B, J]`` (``-inf`` on padded joints)."""
    return cons.log_target - torch.einsum("bk,bkj->bj", alpha * cons.rows, cons.gains)


def joint_from_dual(alpha: Tensor, cons: Constraints) -> Tensor:
    """The joint ``sigma_alpha = softmax(logits)``, shape ``[B, J]``; zero on padded joints."""
    return torch.softmax(dual_logits(alpha, cons), dim=1)


def dual_objective(alpha: Tensor, cons: Constraints) -> Tensor:
    """``f(alpha) = logsumexp(logits) + sum_k alpha_k eps_k``, shape ``[B]``; convex in ``alpha >= 0``."""
    return torch.logsumexp(dual_logits(alpha, cons), dim=1) + (alpha * cons.eps).sum(dim=1)


def regrets(sigma: Tensor, cons: Constraints) -> Tensor:
    """Expected deviation gain of every row, ``[B, K]``, for a flat joint ``sigma [B, J]``."""
    return torch.einsum("bkj,bj->bk", cons.gains, sigma.reshape(sigma.shape[0], -1))


def masked_row_max(values: Tensor, rows: Tensor) -> Tensor:
    """Per game, the largest of ``values [B, K]`` over real ``rows [B, K]``; 0 when there is none."""
    filled = torch.where(rows, values, torch.full_like(values, -math.inf))
    filled = filled.amax(dim=1) if filled.shape[1] else filled.new_full(filled.shape[:1], -math.inf)
    return torch.where(torch.isfinite(filled), filled, torch.zeros_like(filled))


def gap(sigma: Tensor, cons: Constraints) -> Tensor:
    """``max_p max_k sum_a sigma(a) D_k(a)`` per game, ``[B]`` (0 when there is no real row)."""
    return masked_row_max(regrets(sigma, cons), cons.rows)


def violation(sigma: Tensor, cons: Constraints) -> Tensor:
    """``max(0, max_k (regret_k - eps_k))`` per game, ``[B]``."""
    return masked_row_max(regrets(sigma, cons) - cons.eps, cons.rows).clamp_min(0.0)


def entropy(sigma: Tensor) -> Tensor:
    """Shannon entropy (nats) of joints ``[B, ...]``, ``0 log 0 = 0``; shape ``[B]``."""
    flat = sigma.reshape(sigma.shape[0], -1)
    return -torch.special.xlogy(flat, flat).sum(dim=1)


def kl_divergence(p: Tensor, q: Tensor, floor: float = 1e-30) -> Tensor:
    """``KL(p || q)`` per batch element for distributions ``[B, ...]``; ``q`` floored to stay finite."""
    p_flat, q_flat = p.reshape(p.shape[0], -1), q.reshape(q.shape[0], -1)
    return (torch.special.xlogy(p_flat, p_flat) - torch.special.xlogy(p_flat, q_flat.clamp_min(floor))).sum(dim=1)


def active_count(alpha: Tensor, cons: Constraints, tol: float = 1e-7) -> Tensor:
    """Number of constraint rows with a positive multiplier, ``[B]``."""
    return ((alpha > tol) & cons.rows).sum(dim=1)
