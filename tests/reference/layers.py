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

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from did_core.plugins import get_concept

Concept = str


def check_concept(concept: str) -> str:
    """The concept's registered name (the reference layers keep names, as before concepts were objects)."""
    return get_concept(concept).name


def dual_mask(mask: Tensor, concept: str) -> Tensor:
    """Real dual rows of ``concept`` for the action mask ``mask [B, N, A]``."""
    return get_concept(concept).dual_mask(mask)
from did_core.games import joint_mask
from reference.pooling import Aggregation, get_aggregation

__all__ = ["Activation", "dual_mask", "P2P", "P2D", "D2D", "PO2PO", "PO2O", "O2O"]

Activation = Callable[[Tensor], Tensor]
"""An elementwise activation (``F.gelu``, an ``nn.Module`` such as ``nn.GELU()``, ...)."""

_WITHIN = ("none", "own", "others", "all")
"""The within-slice action sets of payoff pooling (docs/mathematics.md, section 5): none, own, others', all actions."""


# ----------------------------------------------------------------------------- checks and masks


def _payoff_sizes(x: Tensor, in_ch: int, trailing: int, what: str) -> tuple[int, ...]:
    """Validate ``[B, C, N, A_1..A_N, <trailing axes>]`` and return ``(A_1..A_N)``."""
    if not isinstance(x, Tensor) or x.dim() < 4 + trailing:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a tensor with at least {4 + trailing} axes, got {shape}")
    n_players = x.shape[2]
    if x.dim() != 3 + n_players + trailing:
        raise ValueError(
            f"{what} of shape {tuple(x.shape)} declares N={n_players} players "
            f"but has {x.dim() - 3 - trailing} action axes"
        )
    _check_in_channels(x, in_ch)
    return tuple(x.shape[3 : 3 + n_players])


def _check_in_channels(x: Tensor, in_ch: int) -> None:
    if x.shape[1] != in_ch:
        raise ValueError(f"expected {in_ch} input channels on axis 1, got {x.shape[1]} (shape {tuple(x.shape)})")


def _action_mask(mask: Tensor | None, batch: int, sizes: Sequence[int], device: torch.device) -> Tensor:
    """The action mask ``[B, N, A_max]`` as bool; all real when ``mask`` is ``None``."""
    a_max = max(sizes)
    if mask is None:
        real = torch.arange(a_max, device=device) < torch.tensor(sizes, device=device).unsqueeze(1)
        return real.unsqueeze(0).expand(batch, len(sizes), a_max)
    expected = (batch, len(sizes), a_max)
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must have shape {list(expected)}, got {list(mask.shape)}")
    return mask.to(device=device, dtype=torch.bool)


def _outcome_mask(outcome_mask: Tensor | None, batch: int, outcomes: int, device: torch.device) -> Tensor:
    """The outcome mask ``[B, M]`` as bool; all real when ``None``."""
    if outcome_mask is None:
        return torch.ones(batch, outcomes, dtype=torch.bool, device=device)
    if tuple(outcome_mask.shape) != (batch, outcomes):
        raise ValueError(f"outcome_mask must have shape {[batch, outcomes]}, got {list(outcome_mask.shape)}")
    return outcome_mask.to(device=device, dtype=torch.bool)


def _payoff_outcome_mask(mask: Tensor, outcome_mask: Tensor, sizes: Sequence[int]) -> Tensor:
    """Real payoff-outcome entries ``[B, 1, 1, A_1..A_N, M]``."""
    batch, n_players = mask.shape[0], len(sizes)
    joint = joint_mask(mask, sizes).reshape(batch, 1, 1, *sizes, 1)
    return joint & outcome_mask.reshape(batch, 1, 1, *([1] * n_players), -1)


def _payoff_outcome_inputs(x: Tensor, in_ch: int, mask: Tensor | None, outcome_mask: Tensor | None
                           ) -> tuple[tuple[int, ...], Tensor, Tensor]:
    """Validate payoff-outcome input; return its action sizes, outcome mask ``[B, M]`` and real entries."""
    sizes = _payoff_sizes(x, in_ch, 1, "payoff-outcome data")
    batch = x.shape[0]
    outcome_mask = _outcome_mask(outcome_mask, batch, x.shape[-1], x.device)
    real = _payoff_outcome_mask(_action_mask(mask, batch, sizes, x.device), outcome_mask, sizes)
    return tuple(sizes), outcome_mask, real


# ----------------------------------------------------------------------------- pooled features


def _subsets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    return [combo for r in range(len(axes) + 1) for combo in combinations(axes, r)]


def _stack_players(per_player: Sequence[tuple[Tensor, ...]], dim: int) -> tuple[Tensor, ...]:
    """Stack per-player statistics (one tuple per player) along ``dim``, statistic by statistic."""
    return tuple(torch.stack(stat, dim=dim) for stat in zip(*per_player))


def _within_pool(
    x: Tensor, mask: Tensor, agg: Aggregation, within: str, actions: tuple[int, ...], extra: tuple[int, ...]
) -> tuple[Tensor, ...]:
    """Pools of each player's slice over a within-slice action set plus ``extra`` axes.

    ``own``/``others`` pool a different axis per player, so they loop over players
    and broadcast each result back over the action axes before stacking.
    """
    if within == "none":
        return agg.pool(x, mask, extra)
    if within == "all":
        return agg.pool(x, mask, actions + extra)
    per_player = []
    for p, own in enumerate(actions):
        dims = (own,) if within == "own" else tuple(d for d in actions if d != own)
        stats = agg.pool(x[:, :, p : p + 1], mask, dims + extra)
        shape = [x.shape[d] if d in actions else size for d, size in enumerate(stats[0].shape)]
        per_player.append(tuple(s.expand(shape) for s in stats))
    return tuple(torch.cat(stat, dim=2) for stat in zip(*per_player))


def _payoff_features(x: Tensor, mask: Tensor, agg: Aggregation, extra: tuple[int, ...]) -> list[Tensor]:
    """The pools of payoff(-outcome) data ``[B, C, N, A_1..A_N, *extra]`` (P2P, PO2PO).

    For every subset ``E`` of the ``extra`` (outcome) axes and every within-slice
    set ``W`` in (none, own, others, all actions), in that order: the pool over
    ``W + E`` kept per player, then merged over players at the same joint action.
    The pool over nothing kept per player is ``x`` itself (the first feature).
    ``1 + (8 * 2**len(extra) - 1) * n_stats`` features.
    """
    actions = tuple(range(3, 3 + x.shape[2]))
    features = [x]
    for ext in _subsets(extra):
        for within in _WITHIN:
            stats = _within_pool(x, mask, agg, within, actions, ext)
            if within != "none" or ext:
                features.extend(stats)
            features.extend(agg.merge(stats, (2,)))
    return features


# ----------------------------------------------------------------------------- the shared core


class _EquivariantLayer(nn.Module, ABC):
    """Pools -> concatenation over channels -> shared linear map -> activation -> zero padding (abstract)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        aggregation: str | Aggregation = "meanvar",
        activation: Activation | None = F.gelu,
    ) -> None:
        super().__init__()
        for name, value in (("in_ch", in_ch), ("out_ch", out_ch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if activation is not None and not callable(activation):
            raise ValueError(f"activation must be callable or None, got {activation!r}")
        self.in_ch = in_ch
        self.out_ch = out_ch
        self.aggregation = get_aggregation(aggregation)
        self.n_features = self._n_features(self.aggregation.n_stats)
        self.linear = nn.Linear(self.n_features * in_ch, out_ch)
        self.activation = activation

    @abstractmethod
    def _n_features(self, n_stats: int) -> int:
        """How many pooled tensors (each with ``in_ch`` channels) ``forward`` builds."""

    def _combine(self, features: Sequence[Tensor], out_mask: Tensor) -> Tensor:
        """``activation(W concat(features) + b)``, zero where ``out_mask`` is false.

        Each feature is ``[B, in_ch, ...]`` broadcastable to the output positions;
        ``out_mask [B, 1, ...]`` marks the real output positions.
        """
        if len(features) != self.n_features:
            raise RuntimeError(f"{type(self).__name__} built {len(features)} features, expected {self.n_features}")
        out: Tensor | None = None
        for weight, feature in zip(self.linear.weight.split(self.in_ch, dim=1), features):
            term = torch.einsum("oc,bc...->bo...", weight, feature)
            out = term if out is None else out + term
        assert out is not None
        out = out + self.linear.bias.reshape(1, -1, *([1] * (out.dim() - 2)))
        if self.activation is not None:
            out = self.activation(out)
        return torch.where(out_mask, out, 0.0)

    def extra_repr(self) -> str:
        act = None if self.activation is None else getattr(self.activation, "__name__", repr(self.activation))
        concept = getattr(self, "concept", None)
        prefix = f"concept={concept!r}, " if concept else ""
        return (
            f"{self.in_ch}, {self.out_ch}, {prefix}aggregation={self.aggregation.name!r}, "
            f"activation={act}"
        )


# ----------------------------------------------------------------------------- the layers


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
        sizes = _payoff_sizes(x, self.in_ch, 0, "payoff data")
        mask = _action_mask(mask, x.shape[0], sizes, x.device)
        real = joint_mask(mask, sizes).reshape(x.shape[0], 1, 1, *sizes)
        return self._combine(_payoff_features(x, real, self.aggregation, ()), real)


class _ConceptLayer(_EquivariantLayer):
    """A layer whose dual-side shape depends on the concept (abstract): CCE rows ``(p, d)``, CE ``(p, r, d)``."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        concept: Concept,
        aggregation: str | Aggregation = "meanvar",
        activation: Activation | None = F.gelu,
    ) -> None:
        self.concept: Concept = check_concept(concept)
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
        return (5 if self.concept == "ce" else 3) * n_stats

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        sizes = _payoff_sizes(x, self.in_ch, 0, "payoff data")
        batch, channels, n_players = x.shape[:3]
        a_max = max(sizes)
        mask = _action_mask(mask, batch, sizes, x.device)
        agg, ce = self.aggregation, self.concept == "ce"
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
        return self._combine(features, dual_mask(mask, self.concept).unsqueeze(1))


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
        return 2 + 6 * n_stats if self.concept == "ce" else 1 + 2 * n_stats

    def forward(self, y: Tensor, mask: Tensor | None = None) -> Tensor:
        ce = self.concept == "ce"
        rank = 5 if ce else 4
        if not isinstance(y, Tensor) or y.dim() != rank or (ce and y.shape[3] != y.shape[4]):
            layout = "[B, C, N, A, A]" if ce else "[B, C, N, A]"
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{self.concept} dual data must have shape {layout}, got {shape}")
        _check_in_channels(y, self.in_ch)
        batch, _, n_players, a_max = y.shape[:4]
        mask = _action_mask(mask, batch, [a_max] * n_players, y.device)
        real = dual_mask(mask, self.concept).unsqueeze(1)
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
        _, _, real = _payoff_outcome_inputs(x, self.in_ch, mask, outcome_mask)
        features = _payoff_features(x, real, self.aggregation, (x.dim() - 1,))
        return self._combine(features, real)


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
