"""The pools of payoff(-outcome) data and their share of the linear map (P2P, PO2PO).

:func:`_payoff_output` pools ``[B, C, N, A_1..A_N, *extra]`` data over every
within-slice action set and every subset of the extra (outcome) axes, and sums
each pool's linear map by broadcasting (docs/mathematics.md, section 5).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import combinations

from torch import Tensor

from did_core.nn.linear_map import _linear, _map_stats, _Terms
from did_core.nn.pooling import Aggregation

_WITHIN = ("none", "own", "others", "all")
"""The within-slice action sets of payoff pooling (docs/mathematics.md, section 5): none, own, others', all actions."""


def _subsets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    return [combo for r in range(len(axes) + 1) for combo in combinations(axes, r)]


def _pool_count(counts: Sequence[Tensor | int], dims: tuple[int, ...]) -> Tensor | float | None:
    """Real entries in a pool over ``dims`` of an outer-product mask with per-axis real lengths ``counts``."""
    if not dims:
        return None
    total = math.prod(counts[d] for d in dims)
    return total.clamp_min(1) if isinstance(total, Tensor) else float(max(total, 1))


def _axis_counts(x: Tensor, mask: Tensor | None, outcome_mask: Tensor | None) -> list[Tensor | int]:
    """Real length of every axis of payoff(-outcome) data ``x [B, C, N, A_1..A_N(, M)]``, indexed by axis.

    A Python int for an axis without padding (``mask`` or ``outcome_mask`` is
    ``None``), else a per-game tensor ``[B, 1, ..., 1]``; the batch and channel
    axes count 1 and the player axis ``N`` (pooling players counts each once).
    """
    n_players = x.shape[2]
    shape = (-1,) + (1,) * (x.dim() - 1)
    counts: list[Tensor | int] = [1, 1, n_players]
    for p in range(n_players):
        counts.append(x.shape[3 + p] if mask is None else mask[:, p].sum(dim=1).to(x.dtype).reshape(shape))
    if x.dim() > 3 + n_players:
        counts.append(x.shape[-1] if outcome_mask is None else outcome_mask.sum(dim=1).to(x.dtype).reshape(shape))
    return counts


def _pool(agg: Aggregation, moments: tuple[Tensor, ...], dims: tuple[int, ...], count: Tensor | float | None
          ) -> tuple[Tensor, ...]:
    """Statistics of ``moments`` reduced over ``dims``; ``count`` is the real entries per group (``None``: none pooled)."""
    return agg.finish(agg.reduce(moments, dims), count)


def _payoff_output(x: Tensor, real: Tensor | None, counts: Sequence[Tensor | int], agg: Aggregation,
                   blocks: Iterator[Tensor], extra: tuple[int, ...]) -> "_Terms":
    """The linear map of the pools of payoff(-outcome) data ``[B, C, N, A_1..A_N, *extra]`` (P2P, PO2PO).

    The pools, in the order of the weights: ``x`` itself, then for every subset
    ``E`` of the ``extra`` (outcome) axes and every within-slice set ``W`` in
    (none, own, others, all actions): the pool over ``W + E`` kept per player
    (except the pool over nothing), then merged over players at the same joint
    action. ``1 + (8 * 2**len(extra) - 1) * n_stats`` features in all; ``blocks``
    yields the weight columns of ``x`` (``[O, C]``), then those of each pool's
    ``n_stats`` statistics (``[O, n_stats * C]``), in that order.

    The concatenation is never built: each pool's share of the linear map is
    applied at the pool's own (reduced) shape, and the results are summed by
    broadcasting (:class:`_Terms`). ``real`` is the real-entry mask (``None``:
    no padding); ``counts[d]`` the real length of axis ``d`` per game.
    """
    n_players = x.shape[2]
    actions = tuple(range(3, 3 + n_players))
    terms = _Terms(_linear(next(blocks), x), n_players)
    moments = agg.moments(x, real)

    def within_moments(reduced: tuple[Tensor, ...], by_axis: dict[int, tuple[Tensor, ...]], p: int,
                       dims: tuple[int, ...]) -> tuple[Tensor, ...]:
        """Player ``p``'s slice of ``reduced`` reduced over the action axes ``dims``, from ``by_axis``."""
        if not dims:
            return tuple(m[:, :, p : p + 1] for m in reduced)
        return agg.reduce(tuple(m[:, :, p : p + 1] for m in by_axis[dims[0]]), dims[1:])

    for ext in _subsets(extra):
        reduced = agg.reduce(moments, ext)
        # One pass over the data per action axis; every other within-slice pool is reduced from these.
        by_axis = {d: agg.reduce(reduced, (d,)) for d in actions}
        for within in _WITHIN:
            if within in ("own", "others"):
                # A different axis set per player: pooled, mapped and kept at each player's own shape.
                groups = []
                for p, axis in enumerate(actions):
                    dims = (axis,) if within == "own" else tuple(d for d in actions if d != axis)
                    groups.append(agg.finish(within_moments(reduced, by_axis, p, dims),
                                             _pool_count(counts, dims + ext)))
                kept, merged = next(blocks), next(blocks)
                for p, stats in enumerate(groups):
                    terms.add(_map_stats(kept, stats), player=p)
                linear, rest = agg.merge_split(groups)
                per_player = merged / n_players  # the merge is the mean of the linear parts over players
                for stats in linear:
                    terms.add(_map_stats(per_player, stats))
                columns = merged.split(x.shape[1], dim=1)
                for weight, item in zip(columns, rest):
                    if item is not None:
                        terms.add(_linear(weight * item[1], item[0]))
                continue
            # Players pooled at the same joint action, each counted once: the player axis joins the pool.
            dims = actions if within == "all" else ()
            kept_moments = agg.reduce(by_axis[actions[0]], actions[1:]) if dims else reduced
            if within != "none" or ext:
                terms.add(_map_stats(next(blocks), agg.finish(kept_moments, _pool_count(counts, dims + ext))))
            terms.add(_map_stats(next(blocks), _pool(agg, kept_moments, (2,), _pool_count(counts, (2,) + dims + ext))))
    return terms
