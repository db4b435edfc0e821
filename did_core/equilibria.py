"""The eps-constraint system of a batch, the eps-ME dual and quality measures (docs/mathematics.md, sections 2-3).

Everything is batched and masked (see ``did_core.games`` for the conventions) and
works for any registered concept (``did_core.concepts``): rows ``K`` and joint
actions ``J = prod_p A_p`` are flat, padded rows are flagged false in
``Constraints.rows`` and are all-zero, and every product with the rows goes
through the concept's matrix-free operator. A concept with a per-player layout
reshapes its flat duals ``[B, K]`` to ``[B, N, A_max]`` (rows ``(p, d)``) or
``[B, N, A_max, A_max]`` (rows ``(p, r, d)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from did_core.concepts import Concept, ConstraintOperator
from did_core.files import shown
from did_core.games import player_scale

__all__ = [
    "Epsilon",
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


@dataclass(frozen=True)
class Epsilon:
    """The equilibrium tolerance: ``eps_p = value * s_p(G)`` when relative, else ``value``."""

    value: float = 0.05
    relative: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.value, (int, float)) and math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"eps must be a finite number > 0, got {shown(self.value)}")

    @classmethod
    def of(cls, eps: "Epsilon | float") -> "Epsilon":
        """Accept an ``Epsilon`` or a bare number (relative)."""
        return eps if isinstance(eps, Epsilon) else cls(float(eps))

    def per_player(self, games: Tensor, mask: Tensor) -> Tensor:
        """Per-player tolerance ``[B, N]`` (differentiable in ``games`` when relative)."""
        if self.relative:
            return self.value * player_scale(games, mask)
        return torch.full(games.shape[:2], self.value, dtype=games.dtype, device=games.device)


@dataclass
class Constraints:
    """The eps-constraints ``D sigma <= eps`` of a batch under one concept, matrix-free.

    ``operator`` gives the products with the rows ``D [B, K, J]``; ``eps [B, K]``
    (0 on padded rows), ``log_target [B, J]`` (uniform over real joint actions,
    ``-inf`` elsewhere). ``rows [B, K]`` and ``joint [B, J]`` flag real rows and joint
    actions; ``gains`` is the dense ``D`` (formed on first use, for conic solvers).
    """

    operator: ConstraintOperator
    eps: Tensor
    log_target: Tensor
    epsilon: Epsilon
    concept: Concept
    _dense: Tensor | None = field(default=None, repr=False)

    @property
    def rows(self) -> Tensor:
        """Real rows ``[B, K]``."""
        return self.operator.real

    @property
    def joint(self) -> Tensor:
        """Real joint actions ``[B, J]``."""
        return self.operator.joint

    @property
    def sizes(self) -> tuple[int, ...]:
        """The padded action counts ``(A_1..A_N)``."""
        return self.operator.sizes

    @property
    def row_player(self) -> Tensor:
        """The player whose tolerance each row gets, ``[K]`` (``-1``: tolerance 0)."""
        return self.operator.owners

    @property
    def gains(self) -> Tensor:
        """The dense rows ``D [B, K, J]``."""
        if self._dense is None:
            self._dense = self.operator.dense()
        return self._dense

    @property
    def dual_shape(self) -> tuple[int, ...]:
        """Structured shape of one game's duals: the concept's layout, else flat ``(K,)`` (these games' rows,
        which for a concept without a layout need not be those of a square game)."""
        if self.concept.layout is None:
            return (self.operator.n_rows,)
        return self.concept.layout.shape(len(self.sizes), max(self.sizes))

    def unflatten_dual(self, alpha: Tensor) -> Tensor:
        """``[B, K]`` to ``[B, *dual_shape]``."""
        return alpha.reshape(alpha.shape[0], *self.dual_shape)

    def unflatten_joint(self, sigma: Tensor) -> Tensor:
        """``[B, J]`` to ``[B, A_1..A_N]``."""
        return sigma.reshape(sigma.shape[0], *self.sizes)


def constraints(games: Tensor, mask: Tensor, concept: Concept, eps: "Epsilon | float") -> Constraints:
    """The constraint system of ``games [B, N, A_1..A_N]`` with ``mask [B, N, A_max]`` under ``concept``
    (differentiable in ``games``)."""
    epsilon = Epsilon.of(eps)
    op = concept.operator(games, mask)
    return Constraints(op, op.eps_rows(games, mask, epsilon), op.log_target(), epsilon, concept)


def dual_logits(alpha: Tensor, cons: Constraints) -> Tensor:
    """``log target(a) - sum_k alpha_k D_k(a)``, shape ``[B, J]`` (``-inf`` on padded joints)."""
    return cons.log_target - cons.operator.transpose(alpha * cons.rows)


def joint_from_dual(alpha: Tensor, cons: Constraints) -> Tensor:
    """The joint ``sigma_alpha = softmax(logits)``, shape ``[B, J]``; zero on padded joints."""
    return torch.softmax(dual_logits(alpha, cons), dim=1)


def dual_objective(alpha: Tensor, cons: Constraints) -> Tensor:
    """``f(alpha) = logsumexp(logits) + sum_k alpha_k eps_k``, shape ``[B]``; convex in ``alpha >= 0``."""
    return torch.logsumexp(dual_logits(alpha, cons), dim=1) + (alpha * cons.eps).sum(dim=1)


def regrets(sigma: Tensor, cons: Constraints) -> Tensor:
    """Expected deviation gain of every row, ``[B, K]``, for a flat joint ``sigma [B, J]``."""
    return cons.operator.regrets(sigma.reshape(sigma.shape[0], -1))


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
