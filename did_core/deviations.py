"""Unilateral deviation gains as matrix-free constraint operators (docs/mathematics.md, section 2).

Player ``p``'s gain from playing ``d`` instead of ``a_p`` at joint action ``a`` is
``G_p[d, a_{-p}] - G_p[a]``. Two row families are built from it:

* :class:`ActionDeviations` -- row ``(p, d)``: ``D(a) = G_p[d, a_{-p}] - G_p[a]``
  (every recommendation pooled: the coarse correlated constraints);
* :class:`RecommendedDeviations` -- row ``(p, r, d)``, ``r != d``:
  ``D(a) = 1[a_p = r] (G_p[d, a_{-p}] - G_p[a])`` (told ``r``, plays ``d``: the
  correlated constraints).

Rows are padded per player to ``A_max`` (``[N, A_max]`` and ``[N, A_max, A_max]``,
flattened in C order). Every product is computed from the payoffs in
``O(B N A J)`` without forming the ``[B, K, J]`` rows, which for the second family
are ``A`` times larger than the game.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from did_core.concepts import ConstraintOperator, DualLayout

__all__ = ["PlayerDeviations", "ActionDeviations", "RecommendedDeviations"]


class PlayerDeviations(ConstraintOperator):
    """Shared part of the per-player deviation operators: each player's payoffs with its own axis first.

    **Arguments:** ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``.
    """

    layout: DualLayout

    def __init__(self, games: Tensor, mask: Tensor) -> None:
        super().__init__(games, mask)
        self.a_max = max(self.sizes)
        weights = self.joint.to(games.dtype)
        # Per player p: G_p with p's own axis first, [B, A_p, J / A_p], zero on padded joint actions.
        self._own = [self._own_first(games[:, p].reshape(self.batch, self.joints) * weights, p)
                     for p in range(self.n_players)]
        self.real = self.layout.mask(mask).flatten(1)
        self.rows_per_player = self.real.shape[1] // self.n_players
        self.owners = torch.arange(self.n_players, device=games.device).repeat_interleave(self.rows_per_player)

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
        x = x * self.joint
        out = []
        for p, own in enumerate(self._own):
            xp = self._own_first(x, p)
            current = (xp * own).sum(dim=2)  # [B, A_p]: sum_{a_-p} x(r, a_-p) G_p(r, a_-p)
            out.append(self._player_regrets(xp, own, current).flatten(1))
        return torch.cat(out, dim=1) * self.real

    def transpose(self, alpha: Tensor) -> Tensor:
        alpha = (alpha * self.real).reshape(self.batch, self.n_players, self.rows_per_player)
        out = torch.zeros(self.batch, self.joints, dtype=alpha.dtype, device=alpha.device)
        for p, own in enumerate(self._own):
            out = out + self._joint_from_own(self._player_transpose(alpha[:, p], own), p)
        return out * self.joint

    def rows(self, index: Tensor, games: Tensor | None = None) -> Tensor:
        pick = (lambda x: x) if games is None else (lambda x: x.index_select(0, games))  # noqa: E731
        player = index // self.rows_per_player
        within = index % self.rows_per_player
        out = None
        for p, own in enumerate(self._own):
            row = self._joint_from_own(self._player_rows(within, pick(own)), p)
            out = row if out is None else torch.where((player == p).unsqueeze(2), row, out)
        assert out is not None
        out = out.mul_(pick(self.joint).to(out.dtype).unsqueeze(1))
        return out.mul_(pick(self.real).gather(1, index).to(out.dtype).unsqueeze(2))

    @abstractmethod
    def _player_regrets(self, xp: Tensor, own: Tensor, current: Tensor) -> Tensor:
        """Player p's padded rows of ``D x`` from ``x`` and ``G_p`` own-axis first (``[B, A_p, J/A_p]``)."""

    @abstractmethod
    def _player_transpose(self, alpha: Tensor, own: Tensor) -> Tensor:
        """Player p's share of ``D^T alpha``, own-axis first, from its padded row weights."""

    @abstractmethod
    def _player_rows(self, within: Tensor, own: Tensor) -> Tensor:
        """Player p's rows ``[B', M, A_p, J/A_p]`` for row numbers ``within [B', M]`` inside a player's block."""


class ActionDeviations(PlayerDeviations):
    """Rows ``(p, d)``: ``D(a) = G_p[d, a_{-p}] - G_p[a]`` (layout :attr:`DualLayout.ACTION`)."""

    layout = DualLayout.ACTION

    def _player_regrets(self, xp: Tensor, own: Tensor, current: Tensor) -> Tensor:
        block = torch.bmm(own, xp.sum(dim=1).unsqueeze(2)).squeeze(2) - current.sum(dim=1, keepdim=True)
        return F.pad(block, (0, self.a_max - own.shape[1]))

    def _player_transpose(self, alpha: Tensor, own: Tensor) -> Tensor:
        weights = alpha[:, :own.shape[1]]  # [B, d]
        return torch.bmm(weights.unsqueeze(1), own) - weights.sum(dim=1).view(-1, 1, 1) * own

    def _player_rows(self, within: Tensor, own: Tensor) -> Tensor:
        deviation = within.clamp_max(own.shape[1] - 1)
        taken = own.gather(1, deviation.unsqueeze(2).expand(-1, -1, own.shape[2]))
        return taken.unsqueeze(2) - own.unsqueeze(1)


class RecommendedDeviations(PlayerDeviations):
    """Rows ``(p, r, d)``: ``D(a) = 1[a_p = r] (G_p[d, a_{-p}] - G_p[a])`` (layout :attr:`DualLayout.ACTION_PAIR`)."""

    layout = DualLayout.ACTION_PAIR

    def _player_regrets(self, xp: Tensor, own: Tensor, current: Tensor) -> Tensor:
        pad = self.a_max - own.shape[1]
        block = torch.bmm(xp, own.transpose(1, 2)) - current.unsqueeze(2)  # [B, r, d]
        return F.pad(block, (0, pad, 0, pad))

    def _player_transpose(self, alpha: Tensor, own: Tensor) -> Tensor:
        size = own.shape[1]
        weights = alpha.reshape(alpha.shape[0], self.a_max, self.a_max)[:, :size, :size]  # [B, r, d]
        return torch.bmm(weights, own) - weights.sum(dim=2, keepdim=True) * own

    def nonzeros(self) -> int:
        """Row ``(p, r, d)`` is zero off the slice ``a_p = r``: at most ``J / A_p`` nonzeros each."""
        return sum(self.rows_per_player * (self.joints // size) for size in self.sizes)

    def _player_rows(self, within: Tensor, own: Tensor) -> Tensor:
        batch, m = within.shape
        size, rest = own.shape[1], own.shape[2]
        rec = (within // self.a_max).clamp_max(size - 1)
        dev = (within % self.a_max).clamp_max(size - 1)

        def take(i: Tensor) -> Tensor:
            return own.gather(1, i.unsqueeze(2).expand(-1, -1, rest))

        # Row (r, d) is G_p(d, a_-p) - G_p(r, a_-p) on the slice a_p = r, zero elsewhere.
        row = torch.zeros(batch, m, size, rest, dtype=own.dtype, device=own.device)
        row.scatter_(2, rec.view(batch, m, 1, 1).expand(-1, -1, 1, rest), (take(dev) - take(rec)).unsqueeze(2))
        return row
