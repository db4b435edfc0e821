"""The layers with a dual side (P2D, D2D), laid out by an equilibrium concept.

The concept (a :class:`~did_core.concepts.Concept`) fixes the dual layout
(:class:`~did_core.concepts.DualLayout`): rows ``(p, d)`` or ``(p, r, d)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from did_core.concepts import Concept, DualLayout
from did_core.games import joint_mask
from did_core.nn.layer_base import Activation, _EquivariantLayer
from did_core.nn.layer_inputs import _action_mask, _check_in_channels, _payoff_sizes
from did_core.nn.pooling import Aggregation

__all__ = ["P2D", "D2D"]


def _stack_players(per_player: Sequence[tuple[Tensor, ...]], dim: int) -> tuple[Tensor, ...]:
    """Stack per-player statistics (one tuple per player) along ``dim``, statistic by statistic."""
    return tuple(torch.stack(stat, dim=dim) for stat in zip(*per_player))


class _ConceptLayer(_EquivariantLayer):
    """A layer whose dual side has the concept's :class:`~did_core.concepts.DualLayout` (abstract):
    rows ``(p, d)`` (``ACTION``, e.g. CCE) or ``(p, r, d)`` (``ACTION_PAIR``, e.g. CE)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        concept: Concept,
        aggregation: str | Aggregation = "meanvar",
        activation: Activation | None = F.gelu,
    ) -> None:
        if not isinstance(concept, Concept):
            raise TypeError(f"concept must be a did_core.concepts.Concept, got {concept!r} (turn a name into one "
                            f"with did_core.plugins.get_concept)")
        self.concept: Concept = concept
        if self.concept.layout is None:
            raise ValueError(f"concept {self.concept.name!r} has no per-player dual layout; "
                             f"{type(self).__name__} produces duals of layout {', '.join(x.value for x in DualLayout)}")
        self.pairs = self.concept.layout is DualLayout.ACTION_PAIR
        super().__init__(in_ch, out_ch, aggregation, activation)


class P2D(_ConceptLayer):
    """Payoff -> dual layer.

    CCE row ``(p, d)``: pools over ``a_{-p}`` of row ``d`` of ``p``'s slice, pools of
    ``p``'s whole slice, and those merged over players. CE row ``(p, r, d)``: pools
    over ``a_{-p}`` of the deviation gain ``x_p[d, a_{-p}] - x_p[r, a_{-p}]``, of
    row ``r`` and of row ``d``, plus the slice and all-player pools.

    **Arguments:** ``x [B, in_ch, N, A_1..A_N]``, ``mask [B, N, A_max]`` or ``None``.

    **Returns:** CCE ``[B, out_ch, N, A_max]``, CE ``[B, out_ch, N, A_max, A_max]``;
    exactly 0 on rows that are not real (unreal ``r`` or ``d``, and ``r == d``).
    """

    def _n_features(self, n_stats: int) -> int:
        return (5 if self.pairs else 3) * n_stats

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        sizes = _payoff_sizes(x, self.in_ch, 0, "payoff data")
        batch, channels, n_players = x.shape[:3]
        a_max = max(sizes)
        mask = _action_mask(mask, batch, sizes, x.device)
        agg, ce = self.aggregation, self.pairs
        rows, slices, gains = [], [], []
        for p, size in enumerate(sizes):
            # Player p's slice as a matrix: own action x the others' joint actions.
            block = x[:, :, p].movedim(2 + p, 2).reshape(batch, channels, size, -1)
            others = [q for q in range(n_players) if q != p]
            if others:
                cols = joint_mask(mask[:, others], [sizes[q] for q in others]).reshape(batch, 1, 1, -1)
            else:
                cols = mask.new_ones(batch, 1, 1, 1)
            real = cols & mask[:, p, :size].reshape(batch, 1, size, 1)
            pad = a_max - size
            rows.append(tuple(F.pad(s.squeeze(3), (0, pad)) for s in agg.pool(block, cols, (3,))))
            slices.append(tuple(s.reshape(batch, channels, 1) for s in agg.pool(block, real, (2, 3))))
            if ce:
                gains.append(tuple(F.pad(s, (0, pad, 0, pad)) for s in agg.pool_diff(block, cols)))
        row_stats = _stack_players(rows, dim=2)  # [B, C, N, A_max]
        slice_stats = _stack_players(slices, dim=2)  # [B, C, N, 1]
        global_stats = agg.merge(slice_stats, (2,))  # [B, C, 1, 1]
        if ce:
            features = [
                *_stack_players(gains, dim=2),
                *(s.unsqueeze(-1) for s in row_stats),
                *(s.unsqueeze(-2) for s in row_stats),
                *(s.unsqueeze(-1) for s in slice_stats),
                *(s.unsqueeze(-1) for s in global_stats),
            ]
        else:
            features = [*row_stats, *slice_stats, *global_stats]
        return self._combine(features, self.concept.dual_mask(mask).unsqueeze(1))


class D2D(_ConceptLayer):
    """Dual -> dual layer.

    CCE: the row itself, pools over ``d``, and those merged over players. CE: the
    row and its transpose ``(p, d, r)``, pools over ``r``, over ``d`` (each also
    transposed, i.e. read at the other index), over both, and those merged over
    players. Players are pooled only after the player's own action axes.

    **Arguments:** CCE ``y [B, in_ch, N, A]``, CE ``y [B, in_ch, N, A, A]``;
    ``mask [B, N, A]`` (the action mask of the games) or ``None``.

    **Returns:** the same shape with ``out_ch`` channels, 0 on rows that are not real.
    """

    def _n_features(self, n_stats: int) -> int:
        return 2 + 6 * n_stats if self.pairs else 1 + 2 * n_stats

    def forward(self, y: Tensor, mask: Tensor | None = None) -> Tensor:
        ce = self.pairs
        rank = 5 if ce else 4
        if not isinstance(y, Tensor) or y.dim() != rank or (ce and y.shape[3] != y.shape[4]):
            layout = "[B, C, N, A, A]" if ce else "[B, C, N, A]"
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{self.concept.name} dual data must have shape {layout}, got {shape}")
        _check_in_channels(y, self.in_ch)
        batch, _, n_players, a_max = y.shape[:4]
        mask = _action_mask(mask, batch, [a_max] * n_players, y.device)
        real = self.concept.dual_mask(mask).unsqueeze(1)
        agg = self.aggregation
        if not ce:
            per_player = agg.pool(y, real, (3,))
            features = [y, *per_player, *agg.merge(per_player, (2,))]
            return self._combine(features, real)

        def swap(t: Tensor) -> Tensor:
            return t.transpose(-1, -2)

        over_r = agg.pool(y, real, (3,))  # [B, C, N, 1, A]
        over_d = agg.pool(y, real, (4,))  # [B, C, N, A, 1]
        over_both = agg.pool(y, real, (3, 4))  # [B, C, N, 1, 1]
        features = [
            y,
            swap(y),
            *over_r,
            *map(swap, over_r),
            *over_d,
            *map(swap, over_d),
            *over_both,
            *agg.merge(over_both, (2,)),
        ]
        return self._combine(features, real)
