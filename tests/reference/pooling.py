"""Masked aggregations over sets of axes, the building blocks of the equivariant layers (docs/mathematics.md, 5).

Shapes and the masking rule, for every function here:

* ``x`` has any shape; ``mask`` is boolean and broadcastable to ``x`` (true = real
  entry; ``None`` = every entry real); ``dims`` names the axes to pool over
  (negative indices allowed).
* Results keep the pooled axes with length 1, so they broadcast back against
  ``x``; ``expand=True`` returns that broadcast (a view, no copy).
* Padded entries never contribute (their values are ignored; keep them finite
  if gradients must flow), and a pool over a set with no real entry is 0.
* An empty ``dims`` pools nothing: the "pool" of a single entry (``mean = x``,
  ``var = 0``, ``max = x``), zeroed where the mask is false.

An :class:`Aggregation` bundles one reduction (``mean``, ``meanvar``, ``max``) with
the two derived operations the layers need: ``merge`` (combine statistics that
were pooled per group, each group weighted equally, e.g. per player) and
``pool_diff`` (statistics of pairwise row differences, for CE duals).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

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
    axes = _normalize_dims(dims, x.dim())
    if mask is None:
        out = x.mean(dim=axes, keepdim=True) if axes else x
        return _finish(out, x, expand)
    mask = _aligned(mask, x.dim())
    kept = torch.where(mask, x, 0.0)
    out = kept.sum(dim=axes, keepdim=True) / _count(x, mask, axes) if axes else kept
    return _finish(out, x, expand)


def masked_meanvar(
    x: Tensor, mask: Tensor | None, dims: Sequence[int], *, expand: bool = False
) -> tuple[Tensor, Tensor]:
    """Mean and (population) variance of the real entries of ``x`` over ``dims`` (keepdim)."""
    axes = _normalize_dims(dims, x.dim())
    mean = masked_mean(x, mask, axes)
    if not axes:
        return _finish(mean, x, expand), _finish(torch.zeros_like(mean), x, expand)
    square = (x - mean).square()
    if mask is None:
        var = square.mean(dim=axes, keepdim=True)
    else:
        mask = _aligned(mask, x.dim())
        var = torch.where(mask, square, 0.0).sum(dim=axes, keepdim=True) / _count(x, mask, axes)
    return _finish(mean, x, expand), _finish(var, x, expand)


def masked_max(x: Tensor, mask: Tensor | None, dims: Sequence[int], *, expand: bool = False) -> Tensor:
    """Maximum of the real entries of ``x`` over ``dims`` (keepdim; 0 where none is real)."""
    axes = _normalize_dims(dims, x.dim())
    if mask is None:
        out = x.amax(dim=axes, keepdim=True) if axes else x
        return _finish(out, x, expand)
    mask = _aligned(mask, x.dim())
    if not axes:
        return _finish(torch.where(mask, x, 0.0), x, expand)
    out = torch.where(mask, x, -math.inf).amax(dim=axes, keepdim=True)
    return _finish(torch.where(torch.isneginf(out), 0.0, out), x, expand)


class Aggregation(ABC):
    """How a pool reduces a set of entries to ``n_stats`` statistics (abstract).

    Subclasses are final; :data:`AGGREGATIONS` holds one instance of each.
    """

    name: ClassVar[str]
    n_stats: ClassVar[int]

    @abstractmethod
    def pool(self, x: Tensor, mask: Tensor | None, dims: Sequence[int]) -> tuple[Tensor, ...]:
        """The ``n_stats`` statistics of the real entries of ``x`` over ``dims`` (keepdim)."""

    @abstractmethod
    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        """Combine statistics pooled per group into those of the union, each group weighted equally.

        ``stats`` is what :meth:`pool` returned, stacked with the groups along
        ``dims`` (every group real). For ``meanvar`` this is the mean and
        variance of the equal-weight mixture of the groups.
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


class MeanAggregation(Aggregation):
    """``mean``: one statistic."""

    name = "mean"
    n_stats = 1

    def pool(self, x: Tensor, mask: Tensor | None, dims: Sequence[int]) -> tuple[Tensor, ...]:
        return (masked_mean(x, mask, dims),)

    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        (mean,) = stats
        return (mean.mean(dim=tuple(dims), keepdim=True) if dims else mean,)

    def pool_diff(self, rows: Tensor, col_mask: Tensor | None) -> tuple[Tensor, ...]:
        mu = masked_mean(rows, col_mask, (-1,)).squeeze(-1)
        return (mu.unsqueeze(-2) - mu.unsqueeze(-1),)


class MeanVarAggregation(Aggregation):
    """``meanvar(x) = (mean x, var x)``: two statistics (the default, docs/mathematics.md, section 5)."""

    name = "meanvar"
    n_stats = 2

    def pool(self, x: Tensor, mask: Tensor | None, dims: Sequence[int]) -> tuple[Tensor, ...]:
        return masked_meanvar(x, mask, dims)

    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        mean, var = stats
        if not dims:
            return mean, var
        axes = tuple(dims)
        total_mean = mean.mean(dim=axes, keepdim=True)
        between = (mean - total_mean).square().mean(dim=axes, keepdim=True)
        return total_mean, var.mean(dim=axes, keepdim=True) + between

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

    def pool(self, x: Tensor, mask: Tensor | None, dims: Sequence[int]) -> tuple[Tensor, ...]:
        return (masked_max(x, mask, dims),)

    def merge(self, stats: Sequence[Tensor], dims: Sequence[int]) -> tuple[Tensor, ...]:
        (top,) = stats
        return (top.amax(dim=tuple(dims), keepdim=True) if dims else top,)


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
        raise ValueError(f"unknown aggregation {name!r}; known: {known}") from None
