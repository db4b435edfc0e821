"""The payoff -> payoff layer (P2P)."""

from __future__ import annotations

from torch import Tensor

from did_core.nn.layer_base import _EquivariantLayer

__all__ = ["P2P"]


class P2P(_EquivariantLayer):
    """Payoff -> payoff layer.

    Pools every subset of {own actions of the slice's player, the other players'
    actions, players}: the action sets are pooled within each player's slice, the
    players axis at the same joint action after that (each player weighted equally).

    **Arguments:** ``x [B, in_ch, N, A_1..A_N]``, ``mask [B, N, A_max]`` or ``None``.

    **Returns:** ``[B, out_ch, N, A_1..A_N]``, exactly 0 on padded joint actions.
    Any ``N >= 1``; action counts may differ between players.
    """

    def _n_features(self, n_stats: int) -> int:
        return 1 + 7 * n_stats

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self._payoff_forward(x, mask, None, ())
