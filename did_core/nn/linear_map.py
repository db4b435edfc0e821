"""The layers' linear map over channels, applied piecewise.

A layer's linear map of the concatenated features is computed as a sum of
per-feature (per-pool) products, each at the feature's own reduced shape
(:func:`_linear`, :func:`_map_stats`), summed by broadcasting (:class:`_Terms`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def _linear(weight: Tensor, x: Tensor) -> Tensor:
    """``weight [O, C]`` applied to the channels of ``x [B, C, ...]``: ``[B, O, ...]`` (any trailing shape).

    Large data: a batched product with the weight broadcast over the batch
    (channels-first data needs no transposed copy). Small data (pooled
    statistics): one matrix product over all positions, which has less overhead.
    """
    batch, channels, *rest = x.shape
    flat = x.reshape(batch, channels, -1)
    if flat.shape[2] >= _BATCHED_MIN_POSITIONS:
        return torch.bmm(weight.expand(batch, *weight.shape), flat).reshape(batch, weight.shape[0], *rest)
    out = weight @ flat.transpose(0, 1).reshape(channels, -1)
    return out.reshape(-1, batch, flat.shape[2]).transpose(0, 1).reshape(batch, weight.shape[0], *rest)


_BATCHED_MIN_POSITIONS = 32
"""Positions per game from which :func:`_linear` uses the batched product (measured on CPU)."""


class _Terms:
    """Outputs of per-pool linear maps, summed by broadcast shape so each full-size addition happens once.

    ``add(t)`` takes a term broadcastable to the output ``[B, O, N, ...]``;
    ``add(t, player=p)`` one for player ``p``'s slice only (``t`` has a player
    axis of length 1). Terms of equal shape are summed first, per-player terms
    are stacked over players, and smaller sums are folded into larger ones they
    broadcast into before the output is touched.
    """

    def __init__(self, base: Tensor | None, n_players: int) -> None:
        self.base = base
        self.n_players = n_players
        self.shared: dict[tuple[int, ...], Tensor] = {}
        self.players: dict[tuple[int, ...], list[Tensor | None]] = {}

    def add(self, term: Tensor | None, player: int | None = None) -> None:
        if term is None:
            return
        key = tuple(term.shape)
        if player is None:
            self.shared[key] = self.shared[key] + term if key in self.shared else term
            return
        slots = self.players.setdefault(key, [None] * self.n_players)
        slots[player] = term if slots[player] is None else slots[player] + term

    def total(self) -> Tensor:
        """The sum of every term (and ``base``), broadcast to the output shape."""
        for key, slots in self.players.items():
            zero = next(s for s in slots if s is not None).new_zeros(key)
            self.add(torch.cat([zero if s is None else s for s in slots], dim=2))
        finals = [] if self.base is None else [self.base]
        keys = sorted(self.shared, key=math.prod)
        for i, key in enumerate(keys):
            into = next((k for k in keys[i + 1:] if all(a in (1, b) for a, b in zip(key, k))), None)
            if into is not None:
                self.shared[into] = self.shared[into] + self.shared[key]
            else:
                finals.append(self.shared[key])
        # The first sum is a fresh tensor (not a view, which autograd would copy on every in-place
        # update), so it can take the other terms in place.
        shape = torch.broadcast_shapes(*(t.shape for t in finals))
        full = next((i for i, t in enumerate(finals) if t.shape == shape), len(finals) - 1)
        out = finals.pop(full)
        if finals:
            out = out + finals.pop()
        for term in finals:
            out.add_(term)
        return out


def _map_stats(block: Tensor, stats: Sequence[Tensor | None]) -> Tensor | None:
    """One pool's share of the linear map: ``block [O, n_stats * C]`` on its statistics ``[B, C, ...]`` each.

    The statistics present (a ``None`` contributes nothing) are concatenated over
    channels, so one product serves them all.
    """
    present = [i for i, s in enumerate(stats) if s is not None]
    if not present:
        return None
    if len(present) < len(stats):
        columns = block.split(block.shape[1] // len(stats), dim=1)
        block = torch.cat([columns[i] for i in present], dim=1)
    inputs = [stats[i] for i in present]
    return _linear(block, inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1))
