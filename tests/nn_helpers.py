"""Shared helpers of the ``did_core.nn`` tests (``test_nn_*.py``): seeded inputs, masks, the layer cases.

The data-kind helpers permute, cut and build each layer's input and output layouts,
independently of the implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from did_core.plugins import get_concept
from did_core.nn import D2D, O2O, P2D, P2P, PO2O, PO2PO

DTYPE = torch.float64
CH_IN, CH_OUT = 2, 3


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def size_mask(counts: Sequence[Sequence[int]], a_max: int) -> Tensor:
    """Action mask ``[B, N, a_max]`` with ``counts[b][p]`` real actions."""
    counts_t = torch.tensor(counts)
    return torch.arange(a_max).view(1, 1, -1) < counts_t.unsqueeze(-1)


# ----------------------------------------------------------------------------- data kinds
# Each layer maps between these layouts; the helpers below permute, cut and build them.
#   payoff [B, C, N, A_1..A_N]   po [B, C, N, A_1..A_N, M]
#   cce    [B, C, N, A]          ce [B, C, N, A, A]        outcome [B, C, N, M]


def _action_axes(kind: str, n_players: int, player: int) -> tuple[int, ...]:
    """The axes a permutation of ``player``'s actions acts on (for the player's slice only in duals)."""
    if kind in ("payoff", "po"):
        return (3 + player,)
    return {"cce": (3,), "ce": (3, 4)}.get(kind, ())


def permute_actions(t: Tensor, kind: str, player: int, perm: Tensor) -> Tensor:
    """Permute the first ``len(perm)`` actions of ``player`` (padded ones stay put)."""
    axes = _action_axes(kind, t.shape[2], player)
    if not axes:
        return t
    full = torch.cat([perm, torch.arange(len(perm), t.shape[axes[0]])])
    if kind in ("payoff", "po"):
        return t.index_select(axes[0], full)
    block = t[:, :, player]
    for axis in axes:
        block = block.index_select(axis - 1, full)
    out = t.clone()
    out[:, :, player] = block
    return out


def permute_players(t: Tensor, kind: str, sigma: Sequence[int]) -> Tensor:
    """Player ``i`` of the result is player ``sigma[i]`` of ``t`` (with its action axis)."""
    out = t[:, :, list(sigma)]
    if kind in ("payoff", "po"):
        n = len(sigma)
        order = [0, 1, 2, *(3 + s for s in sigma), *range(3 + n, t.dim())]
        out = out.permute(order)
    return out


def permute_outcomes(t: Tensor, kind: str, perm: Tensor) -> Tensor:
    return t.index_select(t.dim() - 1, perm) if kind in ("po", "outcome") else t


def cut_to_real(t: Tensor, kind: str, b: int, counts: Sequence[int], outcomes: int) -> Tensor:
    """Game ``b`` of a padded batch cut to its real size (duals keep ``max(counts)`` rows)."""
    t = t[b : b + 1]
    if kind in ("payoff", "po"):
        t = t[(slice(None),) * 3 + tuple(slice(0, k) for k in counts)]
    elif kind == "cce":
        t = t[..., : max(counts)]
    elif kind == "ce":
        t = t[..., : max(counts), : max(counts)]
    if kind in ("po", "outcome"):
        t = t[..., :outcomes]
    return t


def pad_zeros(t: Tensor, shape: Sequence[int]) -> Tensor:
    out = t.new_zeros(shape)
    out[tuple(slice(0, s) for s in t.shape)] = t
    return out


@dataclass(frozen=True)
class Case:
    """One layer under test: how to build it, its input and output layouts."""

    name: str
    build: Callable[[str], nn.Module]
    source: str
    target: str

    def layer(self, aggregation: str = "meanvar") -> nn.Module:
        torch.manual_seed(0)
        return self.build(aggregation).to(DTYPE)

    def input(self, batch: int, sizes: Sequence[int], outcomes: int, gen: torch.Generator) -> Tensor:
        n, a_max = len(sizes), max(sizes)
        shape = {
            "payoff": (batch, CH_IN, n, *sizes),
            "po": (batch, CH_IN, n, *sizes, outcomes),
            "cce": (batch, CH_IN, n, a_max),
            "ce": (batch, CH_IN, n, a_max, a_max),
            "outcome": (batch, CH_IN, n, outcomes),
        }[self.source]
        return torch.randn(shape, generator=gen, dtype=DTYPE)

    def __call__(self, layer: nn.Module, x: Tensor, mask: Tensor | None, outcome_mask: Tensor | None) -> Tensor:
        if self.source == "po":
            return layer(x, mask, outcome_mask)
        if self.source == "outcome":
            return layer(x, outcome_mask)
        return layer(x, mask)


CASES = [
    Case("P2P", lambda agg: P2P(CH_IN, CH_OUT, agg), "payoff", "payoff"),
    Case("P2D-cce", lambda agg: P2D(CH_IN, CH_OUT, get_concept("cce"), agg), "payoff", "cce"),
    Case("P2D-ce", lambda agg: P2D(CH_IN, CH_OUT, get_concept("ce"), agg), "payoff", "ce"),
    Case("D2D-cce", lambda agg: D2D(CH_IN, CH_OUT, get_concept("cce"), agg), "cce", "cce"),
    Case("D2D-ce", lambda agg: D2D(CH_IN, CH_OUT, get_concept("ce"), agg), "ce", "ce"),
    Case("PO2PO", lambda agg: PO2PO(CH_IN, CH_OUT, agg), "po", "po"),
    Case("PO2O", lambda agg: PO2O(CH_IN, CH_OUT, agg), "po", "outcome"),
    Case("O2O", lambda agg: O2O(CH_IN, CH_OUT, agg), "outcome", "outcome"),
]
CASE_IDS = [c.name for c in CASES]
# N = 1, non-square N = 2, non-square N = 3.
SIZES = [(3,), (2, 3), (2, 3, 2)]
OUTCOMES = 3


def equivariance_inputs(case: Case, sizes: Sequence[int], seed: int) -> tuple[Tensor, Tensor]:
    x = case.input(2, sizes, OUTCOMES, seeded(seed))
    mask = size_mask([list(sizes)] * 2, max(sizes))
    return x, mask
