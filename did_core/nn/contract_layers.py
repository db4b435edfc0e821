"""The payoff-outcome and outcome layers of contracts (PO2PO, PO2O, O2O)."""

from __future__ import annotations

from torch import Tensor

from did_core.nn.layer_base import _EquivariantLayer
from did_core.nn.layer_inputs import _check_in_channels, _outcome_mask, _payoff_outcome_inputs

__all__ = ["PO2PO", "PO2O", "O2O"]


class PO2PO(_EquivariantLayer):
    """Payoff-outcome -> payoff-outcome layer (contracts).

    The pools of :class:`P2P`, each with the outcome axis kept or pooled.

    **Arguments:** ``x [B, in_ch, N, A_1..A_N, M]``, ``mask [B, N, A_max]`` or
    ``None``, ``outcome_mask [B, M]`` or ``None``.

    **Returns:** ``[B, out_ch, N, A_1..A_N, M]``, 0 on padded actions or outcomes.
    """

    def _n_features(self, n_stats: int) -> int:
        return 1 + 15 * n_stats

    def forward(self, x: Tensor, mask: Tensor | None = None, outcome_mask: Tensor | None = None) -> Tensor:
        return self._payoff_forward(x, mask, outcome_mask, (x.dim() - 1,))


class PO2O(_EquivariantLayer):
    """Payoff-outcome -> outcome layer: collapses the action axes (contracts).

    Per ``(p, w)``: pools of ``p``'s slice over all actions at outcome ``w``, over
    all actions and outcomes, and both merged over players.

    **Arguments:** ``x [B, in_ch, N, A_1..A_N, M]``, ``mask [B, N, A_max]`` or
    ``None``, ``outcome_mask [B, M]`` or ``None``.

    **Returns:** ``[B, out_ch, N, M]``, 0 on padded outcomes.
    """

    def _n_features(self, n_stats: int) -> int:
        return 4 * n_stats

    def forward(self, x: Tensor, mask: Tensor | None = None, outcome_mask: Tensor | None = None) -> Tensor:
        sizes, outcome_mask, real = _payoff_outcome_inputs(x, self.in_ch, mask, outcome_mask)
        batch = x.shape[0]
        actions = tuple(range(3, 3 + len(sizes)))
        agg = self.aggregation
        per_outcome = tuple(s.squeeze(actions) for s in agg.pool(x, real, actions))  # [B, C, N, M]
        overall = tuple(s.squeeze(actions) for s in agg.pool(x, real, actions + (x.dim() - 1,)))  # [B, C, N, 1]
        features = [*per_outcome, *agg.merge(per_outcome, (2,)), *overall, *agg.merge(overall, (2,))]
        return self._combine(features, outcome_mask.reshape(batch, 1, 1, -1))


class O2O(_EquivariantLayer):
    """Outcome -> outcome layer: pools over every subset of {players, outcomes} (contracts).

    **Arguments:** ``z [B, in_ch, N, M]``, ``outcome_mask [B, M]`` or ``None``.

    **Returns:** ``[B, out_ch, N, M]``, 0 on padded outcomes.
    """

    def _n_features(self, n_stats: int) -> int:
        return 1 + 3 * n_stats

    def forward(self, z: Tensor, outcome_mask: Tensor | None = None) -> Tensor:
        if not isinstance(z, Tensor) or z.dim() != 4:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"outcome data must have shape [B, C, N, M], got {shape}")
        _check_in_channels(z, self.in_ch)
        batch = z.shape[0]
        real = _outcome_mask(outcome_mask, batch, z.shape[-1], z.device).reshape(batch, 1, 1, -1)
        agg = self.aggregation
        features = [z, *agg.pool(z, real, (3,)), *agg.pool(z, real, (2,)), *agg.pool(z, real, (2, 3))]
        return self._combine(features, real)
