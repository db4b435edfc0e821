"""Masked aggregations over sets of axes, the building blocks of the equivariant layers (docs/mathematics.md, 5).

Shapes and the masking rule, for every function here:

* ``x`` has any shape; ``mask`` is boolean and broadcastable to ``x`` (true = real
  entry; ``None`` = every entry real); ``dims`` names the axes to pool over
  (negative indices allowed).
* Results keep the pooled axes with length 1, so they broadcast back against
  ``x``; ``expand=True`` returns that broadcast (a view, no copy).
* Padded entries never contribute (any finite values: masking multiplies by 0,
  so they must be finite), and a pool over a set with no real entry is 0.
* An empty ``dims`` pools nothing: the "pool" of a single entry (``mean = x``,
  ``var = 0``, ``max = x``), zeroed where the mask is false.

An :class:`Aggregation` bundles one reduction (``mean``, ``meanvar``, ``max``) with
the two derived operations the layers need: ``merge`` (combine statistics that
were pooled per group, each group weighted equally, e.g. per player) and
``pool_diff`` (statistics of pairwise row differences, for CE duals).

Every pool is computed in one pass from *moments*, per-entry quantities that
combine over any set of axes (sums for ``mean`` and ``meanvar``, maxima for
``max``): ``pool = finish(reduce(moments(x, mask), dims), count)``. Because
moments reduced over some axes can be reduced further, a layer that needs pools
over nested axis sets reads its input once and derives the rest from small
tensors (see :mod:`did_core.nn.payoff_pools`).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from did_core.files import shown

__all__ = [
    "masked_mean",
    "masked_meanvar",
    "masked_max",
    "Aggregation",
    "MeanAggregation",
    "MeanVarAggregation",
    "MaxAggregation",
    "AGGREGATIONS",
    "get_aggregation",
]


def _normalize_dims(dims: Sequence[int], ndim: int) -> tuple[int, ...]:
    if any(not -ndim <= d < ndim for d in dims):
        raise ValueError(f"pooling axes {tuple(dims)} out of range for a tensor with {ndim} axes")
    return tuple(sorted({d % ndim for d in dims}))


def _aligned(mask: Tensor, ndim: int) -> Tensor:
    """``mask`` with leading length-1 axes added so it has ``ndim`` axes."""
    if mask.dim() > ndim:
        raise ValueError(f"mask with {mask.dim()} axes does not broadcast to a tensor with {ndim} axes")
    return mask.reshape((1,) * (ndim - mask.dim()) + tuple(mask.shape))


def _count(x: Tensor, mask: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Real entries per pooled group (keepdim, ``x``'s dtype, at least 1), without expanding the mask."""
    own = [d for d in dims if mask.shape[d] != 1]
    broadcast = math.prod(x.shape[d] for d in dims if mask.shape[d] == 1)
    count = mask.to(x.dtype)
    if own:
        count = count.sum(dim=own, keepdim=True)
    return (count * broadcast).clamp_min(1.0)


def _finish(out: Tensor, x: Tensor, expand: bool) -> Tensor:
    return out.expand(torch.broadcast_shapes(out.shape, x.shape)) if expand else out


def masked_mean(x: Tensor, mask: Tensor | None, dims: Sequence[int], *, expand: bool = False) -> Tensor:
    """Mean of the real entries of ``x`` over ``dims`` (keepdim; 0 where none is real)."""
    return _finish(MeanAggregation().pool(x, mask, dims)[0], x, expand)


def masked_meanvar(
    x: Tensor, mask: Tensor | None, dims: Sequence[int], *, expand: bool = False
) -> tuple[Tensor, Tensor]:
    """Mean and (population) variance of the real entries of ``x`` over ``dims`` (keepdim)."""
    mean, var = MeanVarAggregation().pool(x, mask, dims)
    return _finish(mean, x, expand), _finish(var, x, expand)


def masked_max(x: Tensor, mask: Tensor | None, dims: Sequence[int], *, expand: bool = False) -> Tensor:
    """Maximum of the real entries of ``x`` over ``dims`` (keepdim; 0 where none is real)."""
    return _finish(MaxAggregation().pool(x, mask, dims)[0], x, expand)


class Aggregation(ABC):
    """How a pool reduces a set of entries to ``n_stats`` statistics (abstract).

    Subclasses are final; :data:`AGGREGATIONS` holds one instance of each. A
    subclass defines its moments (:meth:`moments`, :meth:`reduce`, :meth:`finish`)
    and how statistics pooled per group merge (:meth:`merge`, :meth:`merge_split`).
    """

    name: ClassVar[str]
    n_stats: ClassVar[int]

    @abstractmethod
    def moments(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, ...]:
        """Per-entry moments of ``x``, neutral (contributing nothing) where ``mask`` is false."""

    @abstractmethod
    def reduce(self, moments: tuple[Tensor, ...], dims: Sequence[int]) -> tuple[Tensor, ...]:
        """Moments combined over ``dims`` (keepdim); an empty ``dims`` returns them unchanged."""

    @abstractmethod
    def finish(self, moments: tuple[Tensor, ...], count: Tensor | None) -> tuple[Tensor, ...]:
        """The ``n_stats`` statistics from reduced moments and the real entries per group.

        ``count`` broadcasts against the moments (at least 1); ``None`` means nothing
        was pooled (each group is a single entry).
        """

    def pool(self, x: Tensor, mask: Tensor | None, dims: Sequence[int]) -> tuple[Tensor, ...]:
        """The ``n_stats`` statistics of the real entries of ``x`` over ``dims`` (keepdim)."""
        axes = _normalize_dims(dims, x.dim())
        mask = None if mask is None else _aligned(mask, x.dim())
        if not axes:
            return self.finish(self.moments(x, mask), None)
        count = _count(x, mask, axes) if mask is not None else x.new_full((), math.prod(x.shape[d] for d in axes))
        return self.finish(self.reduce(self.moments(x, mask), axes), count)

    @abstractmethod
    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        """Combine statistics pooled per group into those of the union, each group weighted equally.

        ``stats`` is what :meth:`pool` returned, stacked with the groups along
        ``dims`` (every group real). For ``meanvar`` this is the mean and
        variance of the equal-weight mixture of the groups.
        """

    @abstractmethod
    def merge_split(self, groups: Sequence[tuple[Tensor, ...]]) -> tuple[list[tuple[Tensor | None, ...]],
                                                                          tuple[tuple[Tensor, float] | None, ...]]:
        """:meth:`merge` over groups whose statistics have different (broadcastable) shapes, split in two.

        **Arguments:** ``groups``: one tuple of ``n_stats`` statistics per group.

        **Returns:** ``(linear, rest)`` with merged statistic ``k`` equal to
        ``mean_g linear[g][k] + c * r`` where ``rest[k] = (r, c)`` (a ``None``
        adds nothing). The linear parts keep their group's small shape, so a
        linear map can act on them before they are broadcast; only ``r`` has the
        broadcast shape, and the scalar ``c`` can be folded into a linear map.
        """

    def pool_diff(self, rows: Tensor, col_mask: Tensor | None) -> tuple[Tensor, ...]:
        """Statistics over the last axis of ``rows[..., d, :] - rows[..., r, :]`` for every ``(r, d)``.

        **Arguments:** ``rows [..., R, J]``; ``col_mask`` broadcastable to
        ``[..., 1, J]`` (which columns are real; the same for every row).

        **Returns:** ``n_stats`` tensors ``[..., R(r), R(d)]``.
        """
        diff = rows.unsqueeze(-3) - rows.unsqueeze(-2)
        mask = None if col_mask is None else _aligned(col_mask, rows.dim()).unsqueeze(-3)
        return tuple(s.squeeze(-1) for s in self.pool(diff, mask, (-1,)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _zeroed(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x`` with the entries where ``mask`` is false set to 0 (a product: ``x`` must be finite there)."""
    return x if mask is None else times_mask(x, mask)


def times_mask(x: Tensor, mask: Tensor) -> Tensor:
    """``x * mask`` for a mask broadcastable to ``x``, with runs of axes that broadcast alike merged.

    The same product; merging makes it a product over at most a few axes, which
    the CPU kernels do several times faster than a broadcast over many (in the
    backward pass too).
    """
    mask = _aligned(mask, x.dim()).to(x.dtype)
    x_shape: list[int] = []
    mask_shape: list[int] = []
    previous: bool | None = None
    for size, mask_size in zip(x.shape, mask.shape):
        same = size == mask_size
        if same == previous:
            x_shape[-1] *= size
            mask_shape[-1] *= mask_size
        else:
            x_shape.append(size)
            mask_shape.append(mask_size)
        previous = same
    return (x.reshape(x_shape) * mask.reshape(mask_shape)).reshape(x.shape)


def _sums(moments: tuple[Tensor, ...], dims: Sequence[int]) -> tuple[Tensor, ...]:
    return tuple(m.sum(dim=tuple(dims), keepdim=True) for m in moments) if dims else moments


class MeanAggregation(Aggregation):
    """``mean``: one statistic."""

    name = "mean"
    n_stats = 1

    def moments(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, ...]:
        return (_zeroed(x, mask),)

    def reduce(self, moments: tuple[Tensor, ...], dims: Sequence[int]) -> tuple[Tensor, ...]:
        return _sums(moments, dims)

    def finish(self, moments: tuple[Tensor, ...], count: Tensor | None) -> tuple[Tensor, ...]:
        return moments if count is None else (moments[0] / count,)

    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        (mean,) = stats
        return (mean.mean(dim=tuple(dims), keepdim=True) if dims else mean,)

    def merge_split(self, groups: Sequence[tuple[Tensor, ...]]) -> tuple[list[tuple[Tensor | None, ...]],
                                                                          tuple[tuple[Tensor, float] | None, ...]]:
        return [tuple(g) for g in groups], (None,)

    def pool_diff(self, rows: Tensor, col_mask: Tensor | None) -> tuple[Tensor, ...]:
        mu = masked_mean(rows, col_mask, (-1,)).squeeze(-1)
        return (mu.unsqueeze(-2) - mu.unsqueeze(-1),)


class MeanVarAggregation(Aggregation):
    """``meanvar(x) = (mean x, var x)``: two statistics (the default).

    Moments are the sums of ``x`` and ``x^2``; the variance is ``E[x^2] - E[x]^2``
    (clamped at 0), so one pass over ``x`` gives both statistics.
    """

    name = "meanvar"
    n_stats = 2

    def moments(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, ...]:
        kept = _zeroed(x, mask)
        return kept, kept.square()

    def reduce(self, moments: tuple[Tensor, ...], dims: Sequence[int]) -> tuple[Tensor, ...]:
        return _sums(moments, dims)

    def finish(self, moments: tuple[Tensor, ...], count: Tensor | None) -> tuple[Tensor, ...]:
        total, squares = moments
        if count is None:
            return total, total.new_zeros(()).expand_as(total)
        mean = total / count
        return mean, (squares / count - mean.square()).clamp_min(0.0)

    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        mean, var = stats
        if not dims:
            return mean, var
        axes = tuple(dims)
        total_mean = mean.mean(dim=axes, keepdim=True)
        between = (mean - total_mean).square().mean(dim=axes, keepdim=True)
        return total_mean, var.mean(dim=axes, keepdim=True) + between

    def merge_split(self, groups: Sequence[tuple[Tensor, ...]]) -> tuple[list[tuple[Tensor | None, ...]],
                                                                          tuple[tuple[Tensor, float] | None, ...]]:
        # var of the mixture = mean_g (var_g + mean_g^2) - (mean_g mean_g)^2.
        total_mean = sum(mean for mean, _ in groups) / len(groups)
        linear = [(mean, var + mean.square()) for mean, var in groups]
        return linear, (None, (total_mean.square(), -1.0))

    def pool_diff(self, rows: Tensor, col_mask: Tensor | None) -> tuple[Tensor, ...]:
        # var(x_d - x_r) = var x_d + var x_r - 2 cov(x_r, x_d): a matmul instead of an R x R x J tensor.
        mean, var = masked_meanvar(rows, col_mask, (-1,))
        centred = rows - mean
        if col_mask is None:
            count = torch.full((1, 1), float(rows.shape[-1]), dtype=rows.dtype, device=rows.device)
        else:
            col_mask = _aligned(col_mask, rows.dim())
            if col_mask.shape[-2] != 1:
                raise ValueError("pool_diff needs a column mask shared by every row ([..., 1, J])")
            centred = torch.where(col_mask, centred, 0.0)
            count = _count(rows, col_mask, (rows.dim() - 1,))
        cov = centred @ centred.transpose(-1, -2) / count
        mu, v = mean.squeeze(-1), var.squeeze(-1)
        diff_var = (v.unsqueeze(-2) + v.unsqueeze(-1) - 2.0 * cov).clamp_min(0.0)
        return mu.unsqueeze(-2) - mu.unsqueeze(-1), diff_var


class MaxAggregation(Aggregation):
    """``max``: one statistic."""

    name = "max"
    n_stats = 1

    def moments(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, ...]:
        return (x if mask is None else torch.where(mask, x, -math.inf),)

    def reduce(self, moments: tuple[Tensor, ...], dims: Sequence[int]) -> tuple[Tensor, ...]:
        return tuple(m.amax(dim=tuple(dims), keepdim=True) for m in moments) if dims else moments

    def finish(self, moments: tuple[Tensor, ...], count: Tensor | None) -> tuple[Tensor, ...]:
        (top,) = moments
        return (torch.where(torch.isneginf(top), 0.0, top),)

    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        (top,) = stats
        return (top.amax(dim=tuple(dims), keepdim=True) if dims else top,)

    def merge_split(self, groups: Sequence[tuple[Tensor, ...]]) -> tuple[list[tuple[Tensor | None, ...]],
                                                                          tuple[tuple[Tensor, float] | None, ...]]:
        return [(None,) for _ in groups], ((functools.reduce(torch.maximum, (top for (top,) in groups)), 1.0),)


AGGREGATIONS: dict[str, Aggregation] = {
    agg.name: agg for agg in (MeanAggregation(), MeanVarAggregation(), MaxAggregation())
}


def get_aggregation(name: str | Aggregation) -> Aggregation:
    """The aggregation called ``name`` (or ``name`` itself if already one); ``ValueError`` if unknown."""
    if isinstance(name, Aggregation):
        return name
    try:
        return AGGREGATIONS[str(name).lower()]
    except KeyError:
        known = ", ".join(sorted(AGGREGATIONS))
        raise ValueError(f"unknown aggregation {shown(name)}; known: {known}") from None
