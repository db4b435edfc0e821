"""Tests of the masked pools of ``did_core.nn.pooling``, in float64 on small tensors.

Truth is independent of the implementation: pools against explicit loops over the
real entries.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from did_core.nn import AGGREGATIONS, get_aggregation, masked_max, masked_mean, masked_meanvar
from did_core.nn.pooling import Aggregation
from nn_helpers import DTYPE, seeded


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
    g = seeded(0)
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
    x = torch.randn(2, 3, 4, generator=seeded(1), dtype=DTYPE)
    ones = torch.ones(2, 3, 4, dtype=torch.bool)
    for dims in [(), (1,), (0, 2)]:
        for a, b in zip(masked_meanvar(x, None, dims), masked_meanvar(x, ones, dims)):
            assert torch.allclose(a.expand(x.shape), b.expand(x.shape))
        assert torch.allclose(masked_max(x, None, dims).expand(x.shape), masked_max(x, ones, dims).expand(x.shape))


def test_padding_values_are_ignored_by_pools() -> None:
    g = seeded(2)
    x = torch.randn(4, 6, generator=g, dtype=DTYPE)
    mask = torch.rand(4, 6, generator=g) < 0.5
    y = torch.where(mask, x, 1e6 * torch.randn(4, 6, generator=g, dtype=DTYPE))
    for agg in AGGREGATIONS.values():
        for a, b in zip(agg.pool(x, mask, (1,)), agg.pool(y, mask, (1,))):
            assert torch.equal(a, b)


def test_meanvar_merge_is_the_equal_weight_mixture() -> None:
    g = seeded(3)
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
    g = seeded(4)
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
