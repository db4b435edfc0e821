"""Masked equivariant layers (docs/mathematics.md, section 5).

Data layouts (a channel axis ``C`` always follows the batch axis ``B``):

* payoff ``[B, C, N, A_1..A_N]``, with the action mask ``mask [B, N, A_max]`` of
  :mod:`did_core.games` (``A_max = max_p A_p``; ``None`` = every action real);
* dual, as in :mod:`did_core.equilibria`: CCE ``[B, C, N, A_max]`` (row ``(p, d)``),
  CE ``[B, C, N, A_max, A_max]`` (row ``(p, r, d)``: ``p`` told ``r`` plays ``d``).
  Real rows: ``d`` real (CCE); ``r`` and ``d`` real and ``r != d`` (CE);
* payoff-outcome ``[B, C, N, A_1..A_N, M]`` and outcome ``[B, C, N, M]``, with
  ``outcome_mask [B, M]`` (``None`` = every outcome real).

Every layer does the same four steps (one shared implementation,
``_EquivariantLayer._combine``): pool each input channel with a fixed set of
pools, concatenate the pools along channels, apply one linear map over channels
shared by every position, apply the activation (GELU by default, ``None`` for an
output layer), and set padded positions to exactly 0. The linear map of the
concatenation is computed as a sum of per-pool linear maps, each applied before
broadcasting, which is the same map and cheaper. A layer has
``(n_features * in_ch + 1) * out_ch`` parameters; ``n_features`` depends on the
layer kind and the aggregation only, never on the game size.

Pools read real entries only: padding (whatever its finite values) never changes
a real output. Outputs are equivariant: permuting any player's actions, permuting the
players together with their payoff slices and action axes, or (contracts)
permuting outcomes permutes the output the same way. That is why players are
pooled only at a shared index: at the same joint action (payoff data), the same
outcome, or once a player's own action axes have been pooled away (dual data,
where action ``d`` of one player has nothing to do with action ``d`` of another).

Where each part lives: :mod:`~did_core.nn.layer_base` (the shared steps and
``Activation``), :mod:`~did_core.nn.layer_inputs` (input checks and masks),
:mod:`~did_core.nn.linear_map` and :mod:`~did_core.nn.payoff_pools` (the
piecewise linear map and the pools of payoff data), and the layers:
:mod:`~did_core.nn.payoff_layers` (P2P), :mod:`~did_core.nn.dual_layers` (P2D,
D2D) and :mod:`~did_core.nn.contract_layers` (PO2PO, PO2O, O2O). This module
re-exports them.

Example::

    >>> import torch
    >>> from did_core.games import padded_random_games
    >>> from did_core.nn import D2D, P2D, P2P
    >>> games, mask = padded_random_games(4, 2, 2, 5)      # [4, 2, 5, 5], [4, 2, 5]
    >>> h = P2P(1, 16)(games.unsqueeze(1).float(), mask)    # [4, 16, 2, 5, 5]
    >>> h = P2D(16, 16, "ce")(h, mask)                      # [4, 16, 2, 5, 5]: rows (p, r, d)
    >>> D2D(16, 1, "ce", activation=None)(h, mask).shape
    torch.Size([4, 1, 2, 5, 5])
"""

from __future__ import annotations

from did_core.nn.contract_layers import O2O, PO2O, PO2PO
from did_core.nn.dual_layers import D2D, P2D
from did_core.nn.layer_base import Activation
from did_core.nn.payoff_layers import P2P

__all__ = ["Activation", "P2P", "P2D", "D2D", "PO2PO", "PO2O", "O2O"]
