"""Tests of the masked equivariant layers (``did_core.nn``), in float64 on tiny games.

Truth is independent of the implementation: pools against explicit loops over the
real entries, layers against permuted inputs (equivariance) and against the same
game cut to its real size (padding).
"""

from __future__ import annotations

import math
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from did_core.concepts import get_concept
from did_core.nn import (
    AGGREGATIONS,
    D2D,
    O2O,
    P2D,
    P2P,
    PO2O,
    PO2PO,
    get_aggregation,
    masked_max,
    masked_mean,
    masked_meanvar,
)
from did_core.nn.pooling import Aggregation

DTYPE = torch.float64
CH_IN, CH_OUT = 2, 3


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _size_mask(counts: Sequence[Sequence[int]], a_max: int) -> Tensor:
    """Action mask ``[B, N, a_max]`` with ``counts[b][p]`` real actions."""
    counts_t = torch.tensor(counts)
    return torch.arange(a_max).view(1, 1, -1) < counts_t.unsqueeze(-1)


# ----------------------------------------------------------------------------- pooling


def _naive_stats(x: Tensor, mask: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, population variance and max of the real entries, by an explicit loop (keepdim)."""
    mask = mask.expand(x.shape)
    kept = [d for d in range(x.dim()) if d not in dims]
    out_shape = [1 if d in dims else x.shape[d] for d in range(x.dim())]
    mean, var, top = (torch.zeros(out_shape, dtype=x.dtype) for _ in range(3))
    for idx in itertools.product(*(range(x.shape[d]) for d in kept)):
        sel: list[object] = [slice(None)] * x.dim()
        for d, i in zip(kept, idx):
            sel[d] = i
        values = x[tuple(sel)][mask[tuple(sel)]]
        at: list[object] = [0] * x.dim()
        for d, i in zip(kept, idx):
            at[d] = i
        if values.numel():
            mean[tuple(at)] = values.mean()
            var[tuple(at)] = values.var(unbiased=False)
            top[tuple(at)] = values.max()
    return mean, var, top


@pytest.mark.parametrize("dims", [(), (1,), (0, 2), (1, 2), (-1,), (0, 1, 2)])
def test_masked_pools_match_explicit_loops(dims: tuple[int, ...]) -> None:
    g = _gen(0)
    x = torch.randn(3, 4, 5, generator=g, dtype=DTYPE)
    mask = torch.rand(3, 1, 5, generator=g) < 0.6  # broadcast over axis 1
    mask[0] = False  # a group with no real entry pools to 0
    axes = tuple(d % 3 for d in dims)
    mean, var, top = _naive_stats(x, mask, axes)
    got_mean, got_var = masked_meanvar(x, mask, dims)
    shape = torch.broadcast_shapes(mean.shape, got_mean.shape)
    assert torch.allclose(got_mean.expand(shape), mean.expand(shape))
    assert torch.allclose(got_var.expand(shape), var.expand(shape))
    assert torch.allclose(masked_mean(x, mask, dims).expand(shape), mean.expand(shape))
    assert torch.allclose(masked_max(x, mask, dims).expand(shape), top.expand(shape))
    assert masked_mean(x, mask, dims, expand=True).shape == x.shape


def test_unmasked_pools_equal_all_true_mask() -> None:
    x = torch.randn(2, 3, 4, generator=_gen(1), dtype=DTYPE)
    ones = torch.ones(2, 3, 4, dtype=torch.bool)
    for dims in [(), (1,), (0, 2)]:
        for a, b in zip(masked_meanvar(x, None, dims), masked_meanvar(x, ones, dims)):
            assert torch.allclose(a.expand(x.shape), b.expand(x.shape))
        assert torch.allclose(masked_max(x, None, dims).expand(x.shape), masked_max(x, ones, dims).expand(x.shape))


def test_padding_values_are_ignored_by_pools() -> None:
    g = _gen(2)
    x = torch.randn(4, 6, generator=g, dtype=DTYPE)
    mask = torch.rand(4, 6, generator=g) < 0.5
    y = torch.where(mask, x, 1e6 * torch.randn(4, 6, generator=g, dtype=DTYPE))
    for agg in AGGREGATIONS.values():
        for a, b in zip(agg.pool(x, mask, (1,)), agg.pool(y, mask, (1,))):
            assert torch.equal(a, b)


def test_meanvar_merge_is_the_equal_weight_mixture() -> None:
    g = _gen(3)
    groups = [torch.randn(n, generator=g, dtype=DTYPE) for n in (2, 5, 3)]
    agg = get_aggregation("meanvar")
    stats = [agg.pool(v, None, (0,)) for v in groups]
    merged = agg.merge([torch.cat([s[i] for s in stats]) for i in range(2)], (0,))
    weights = torch.cat([torch.full((len(v),), 1.0 / (len(v) * len(groups)), dtype=DTYPE) for v in groups])
    values = torch.cat(groups)
    mean = (weights * values).sum()
    var = (weights * (values - mean) ** 2).sum()
    assert torch.allclose(merged[0].squeeze(), mean) and torch.allclose(merged[1].squeeze(), var)


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_pool_diff_matches_the_explicit_difference(name: str) -> None:
    g = _gen(4)
    rows = torch.randn(2, 3, 4, 6, generator=g, dtype=DTYPE)
    cols = torch.rand(2, 1, 1, 6, generator=g) < 0.6
    cols[..., 0] = True
    agg = get_aggregation(name)
    fast = agg.pool_diff(rows, cols)
    for r, d in itertools.product(range(4), repeat=2):
        diff = rows[:, :, d] - rows[:, :, r]  # [2, 3, 6]
        truth = agg.pool(diff, cols.squeeze(1), (-1,))
        for f, t in zip(fast, truth):
            assert torch.allclose(f[:, :, r, d], t.squeeze(-1))
    assert all(torch.allclose(a, b) for a, b in zip(fast, Aggregation.pool_diff(agg, rows, cols)))


def test_unknown_aggregation_and_bad_axes_raise() -> None:
    with pytest.raises(ValueError, match="unknown aggregation"):
        get_aggregation("median")
    with pytest.raises(ValueError, match="out of range"):
        masked_mean(torch.zeros(2, 3), None, (2,))


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
    Case("P2D-cce", lambda agg: P2D(CH_IN, CH_OUT, "cce", agg), "payoff", "cce"),
    Case("P2D-ce", lambda agg: P2D(CH_IN, CH_OUT, "ce", agg), "payoff", "ce"),
    Case("D2D-cce", lambda agg: D2D(CH_IN, CH_OUT, "cce", agg), "cce", "cce"),
    Case("D2D-ce", lambda agg: D2D(CH_IN, CH_OUT, "ce", agg), "ce", "ce"),
    Case("PO2PO", lambda agg: PO2PO(CH_IN, CH_OUT, agg), "po", "po"),
    Case("PO2O", lambda agg: PO2O(CH_IN, CH_OUT, agg), "po", "outcome"),
    Case("O2O", lambda agg: O2O(CH_IN, CH_OUT, agg), "outcome", "outcome"),
]
CASE_IDS = [c.name for c in CASES]
# N = 1, non-square N = 2, non-square N = 3.
SIZES = [(3,), (2, 3), (2, 3, 2)]
OUTCOMES = 3


def _equivariance_inputs(case: Case, sizes: Sequence[int], seed: int) -> tuple[Tensor, Tensor]:
    x = case.input(2, sizes, OUTCOMES, _gen(seed))
    mask = _size_mask([list(sizes)] * 2, max(sizes))
    return x, mask


# ----------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_permuting_a_players_actions_permutes_the_output(case: Case, sizes: tuple[int, ...]) -> None:
    layer = case.layer()
    x, mask = _equivariance_inputs(case, sizes, seed=10)
    out = case(layer, x, mask, None)
    for player, size in enumerate(sizes):
        perm = torch.randperm(size, generator=_gen(20 + player))
        if size > 1 and torch.equal(perm, torch.arange(size)):
            perm = perm.roll(1)
        got = case(layer, permute_actions(x, case.source, player, perm), mask, None)
        assert torch.allclose(got, permute_actions(out, case.target, player, perm), atol=1e-12)


@pytest.mark.parametrize("sizes", SIZES[1:], ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_permuting_players_permutes_the_output(case: Case, sizes: tuple[int, ...]) -> None:
    layer = case.layer()
    x, mask = _equivariance_inputs(case, sizes, seed=11)
    out = case(layer, x, mask, None)
    for sigma in itertools.permutations(range(len(sizes))):
        x_perm = permute_players(x, case.source, sigma)
        got = case(layer, x_perm, mask[:, list(sigma)], None)
        assert torch.allclose(got, permute_players(out, case.target, sigma), atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.source in ("po", "outcome")], ids=lambda c: c.name)
def test_permuting_outcomes_permutes_the_output(case: Case) -> None:
    layer = case.layer()
    x, mask = _equivariance_inputs(case, (2, 3), seed=12)
    out = case(layer, x, mask, None)
    perm = torch.tensor([2, 0, 1])
    got = case(layer, permute_outcomes(x, case.source, perm), mask, None)
    assert torch.allclose(got, permute_outcomes(out, case.target, perm), atol=1e-12)


def test_harness_catches_players_pooled_at_a_shared_dual_index() -> None:
    """Sanity check of the harness: a non-equivariant map fails the action-permutation test."""
    y = torch.randn(1, 1, 2, 3, generator=_gen(13), dtype=DTYPE)
    bad = y + y.mean(dim=2, keepdim=True)  # pools players at the same d: not equivariant
    perm = torch.tensor([1, 2, 0])
    y_perm = permute_actions(y, "cce", 0, perm)
    assert not torch.allclose(y_perm + y_perm.mean(dim=2, keepdim=True), permute_actions(bad, "cce", 0, perm))


# ----------------------------------------------------------------------------- padding


# Per sizes: padded axis lengths and each game's real counts (real actions come first).
PADDED = [
    ((4,), [[2], [4]]),
    ((3, 4), [[2, 3], [3, 1], [1, 4]]),
    ((3, 2, 3), [[2, 2, 1], [3, 1, 3]]),
]


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("padded", PADDED, ids=lambda p: str(p[0]))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_padding_never_changes_real_outputs(
    case: Case, padded: tuple[tuple[int, ...], list[list[int]]], aggregation: str
) -> None:
    axis_sizes, counts = padded
    batch, a_max = len(counts), max(axis_sizes)
    outcome_counts = [OUTCOMES - b % 2 for b in range(batch)]
    mask = _size_mask(counts, a_max)
    outcome_mask = torch.arange(OUTCOMES).unsqueeze(0) < torch.tensor(outcome_counts).unsqueeze(1)
    x = case.input(batch, axis_sizes, OUTCOMES, _gen(30))
    garbage = 1e3 * case.input(batch, axis_sizes, OUTCOMES, _gen(31))
    # Overwrite everything outside each game's real region with garbage.
    real = torch.zeros_like(x, dtype=torch.bool)
    for b in range(batch):
        region = cut_to_real(real, case.source, b, counts[b], outcome_counts[b]).shape
        real[b][tuple(slice(0, s) for s in region[1:])] = True
    if case.source == "ce":
        real &= ~torch.eye(a_max, dtype=torch.bool)
    layer = case.layer(aggregation)
    out = case(layer, torch.where(real, x, garbage), mask, outcome_mask)
    for b in range(batch):
        cut_x = cut_to_real(x, case.source, b, counts[b], outcome_counts[b])
        cut_mask = _size_mask([counts[b]], max(counts[b]))
        cut_out = case(layer, cut_x, cut_mask, None)
        assert torch.allclose(out[b : b + 1], pad_zeros(cut_out, out[b : b + 1].shape), atol=1e-10), b


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_padded_outputs_are_exactly_zero(case: Case) -> None:
    axis_sizes, counts = PADDED[1]
    mask = _size_mask(counts, max(axis_sizes))
    outcome_mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])
    x = case.input(len(counts), axis_sizes, OUTCOMES, _gen(32))
    out = case(case.layer(), x, mask, outcome_mask)
    for b in range(len(counts)):
        region = cut_to_real(out, case.target, b, counts[b], int(outcome_mask[b].sum()))
        rest = out[b : b + 1].clone()
        rest[tuple(slice(0, s) for s in region.shape)] = 0
        assert torch.count_nonzero(rest) == 0
    if case.target == "cce":
        assert torch.all(out.transpose(1, 3)[~mask.transpose(1, 2)] == 0)
    if case.target == "ce":
        assert torch.all(out.diagonal(dim1=3, dim2=4) == 0)


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_dual_mask_marks_the_constraint_rows(concept: str) -> None:
    from did_core.equilibria import Epsilon, constraints

    counts = [[2, 3], [3, 1]]
    mask = _size_mask(counts, 3)
    games = torch.randn(2, 2, 3, 3, generator=_gen(33), dtype=DTYPE)
    rows = constraints(games, mask, concept, Epsilon()).rows  # type: ignore[arg-type]
    assert torch.equal(get_concept(concept).dual_mask(mask).reshape(2, -1), rows)  # type: ignore[arg-type]
    # Independent truth from the definition: a row is real when its actions are real (and r != d for CE).
    expected = torch.zeros_like(get_concept(concept).dual_mask(mask))  # type: ignore[arg-type]
    for b, per_game in enumerate(counts):
        for p, n in enumerate(per_game):
            for d in range(n):
                if concept == "cce":
                    expected[b, p, d] = True
                else:
                    for r in range(n):
                        expected[b, p, r, d] = r != d
    assert torch.equal(get_concept(concept).dual_mask(mask), expected)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- size independence


# Pooled features per input channel, per layer, for an aggregation with k statistics.
FEATURES: dict[str, Callable[[int], int]] = {
    "P2P": lambda k: 1 + 7 * k,
    "P2D-cce": lambda k: 3 * k,
    "P2D-ce": lambda k: 5 * k,
    "D2D-cce": lambda k: 1 + 2 * k,
    "D2D-ce": lambda k: 2 + 6 * k,
    "PO2PO": lambda k: 1 + 15 * k,
    "PO2O": lambda k: 4 * k,
    "O2O": lambda k: 1 + 3 * k,
}


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parameter_count_depends_on_channels_only(case: Case, aggregation: str) -> None:
    layer = case.layer(aggregation)
    k = AGGREGATIONS[aggregation].n_stats
    expected = (FEATURES[case.name](k) * CH_IN + 1) * CH_OUT
    assert sum(p.numel() for p in layer.parameters()) == expected
    for sizes in [(2,), (2, 2), (4, 3), (3, 2, 2)]:
        x, mask = _equivariance_inputs(case, sizes, seed=40)
        out = case(layer, x, mask, None)  # one layer serves every size
        assert out.shape[:3] == (2, CH_OUT, len(sizes))
    assert sum(p.numel() for p in layer.parameters()) == expected


# ----------------------------------------------------------------------------- semantics


def _select_feature(layer: P2P, index: int) -> None:
    """Make ``layer`` (one input and output channel, no activation) output feature ``index``."""
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.weight[0, index] = 1.0
        layer.linear.bias.zero_()


def test_p2p_pools_own_and_others_actions_as_named() -> None:
    """Mean P2P features against explicit loops: feature 2 = own pool, 5 = others' pool merged over players."""
    counts = [[2, 3]]
    mask = _size_mask(counts, 4)
    x = torch.randn(1, 1, 2, 3, 4, generator=_gen(50), dtype=DTYPE)
    layer = P2P(1, 1, "mean", activation=None).to(DTYPE)
    _select_feature(layer, 2)
    own = layer(x, mask)[0, 0]
    _select_feature(layer, 5)
    others_merged = layer(x, mask)[0, 0]
    k0, k1 = counts[0]
    g = x[0, 0, :, :k0, :k1]
    for a0, a1 in itertools.product(range(k0), range(k1)):
        assert torch.isclose(own[0, a0, a1], g[0, :, a1].mean())  # player 0 pools its own axis 0
        assert torch.isclose(own[1, a0, a1], g[1, a0, :].mean())  # player 1 pools its own axis 1
        merged = 0.5 * (g[0, a0, :].mean() + g[1, :, a1].mean())
        assert torch.isclose(others_merged[0, a0, a1], merged) and torch.isclose(others_merged[1, a0, a1], merged)


def test_p2d_ce_sees_the_deviation_gain_variance() -> None:
    """Two games whose rows have equal means and variances but different gains get different CE features."""
    rows_a = torch.tensor([[1.0, -1.0], [1.0, -1.0]], dtype=DTYPE)
    rows_b = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=DTYPE)
    games = torch.stack([torch.stack([r, torch.zeros(2, 2, dtype=DTYPE)]) for r in (rows_a, rows_b)])
    layer = P2D(1, 4, "ce").to(DTYPE)
    out = layer(games.unsqueeze(1))
    assert not torch.allclose(out[0], out[1])


# ----------------------------------------------------------------------------- gradients and errors


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradcheck(case: Case) -> None:
    torch.manual_seed(0)
    layer = case.build("meanvar").to(DTYPE)
    mask = _size_mask([[2, 2], [1, 3]], 3)
    outcome_mask = torch.tensor([[True, False], [True, True]])
    x = case.input(2, (2, 3), 2, _gen(60)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: case(layer, t, mask, outcome_mask), (x,), fast_mode=True)


def test_layers_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="in_ch"):
        P2P(0, 3)
    with pytest.raises(ValueError, match="unknown concept"):
        P2D(2, 3, "ne")
    with pytest.raises(ValueError, match="unknown aggregation"):
        D2D(2, 3, "cce", aggregation="median")
    with pytest.raises(ValueError, match="activation"):
        O2O(2, 3, activation="gelu")  # type: ignore[arg-type]
    layer = P2P(2, 3).to(DTYPE)
    with pytest.raises(ValueError, match="input channels"):
        layer(torch.zeros(1, 3, 2, 2, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="action axes"):
        layer(torch.zeros(1, 2, 2, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer(torch.zeros(1, 2, 2, 2, 3, dtype=DTYPE), torch.ones(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="dual data"):
        D2D(2, 3, "ce")(torch.zeros(1, 2, 2, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="outcome_mask"):
        PO2O(2, 3)(torch.zeros(1, 2, 1, 2, 3), None, torch.ones(1, 4, dtype=torch.bool))


def test_output_layer_has_no_activation() -> None:
    layer = O2O(1, 1, activation=None).to(DTYPE)
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.bias.fill_(-5.0)
    out = layer(torch.zeros(1, 1, 2, 3, dtype=DTYPE))
    assert torch.all(out == -5.0)  # GELU would give about -1.4e-6


def test_payoff_generator_output_map_applies_to_every_real_entry():
    """A real entry whose raw output is exactly 0 still goes through the map; padded entries stay 0."""
    from did_core.nn.generators import PayoffGenerator

    class Sampler:
        def sample(self, batch, generator):
            return {"x": torch.zeros(batch, 2, 3, 3)}

        def payoff_features(self, context):
            mask = torch.tensor([[True, True, False], [True, True, True]]).expand(context["x"].shape[0], 2, 3)
            return context["x"].unsqueeze(1), mask

    gen = PayoffGenerator(Sampler(), width=4, depth=1, output="neg_softplus")
    torch.nn.init.zeros_(gen.head.linear.weight)
    torch.nn.init.zeros_(gen.head.linear.bias)
    out = gen(Sampler().sample(2, None))
    assert torch.allclose(out[:, :, :2, :], torch.full_like(out[:, :, :2, :], -math.log(2.0)))
    assert torch.equal(out[:, :, 2, :], torch.zeros_like(out[:, :, 2, :]))
