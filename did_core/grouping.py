"""Size groups: run a padded batch as a few sub-batches, each padded only to its own largest size.

A batch of contexts of mixed sizes is padded to the largest; with sizes
``U{2..16}`` per player, about two thirds of a 16 x 16 payoff tensor is padding
that every layer and the equilibrium block would otherwise compute on.
:func:`size_groups` splits the batch into at most ``max_groups`` groups of
contexts, chosen to minimise the padded work ``sum_g |g| * prod_k max_{c in g}
extent_k(c)``; :func:`grouped` crops each group with its sampler.

Grouping changes no result: padding changes no output, and a designer loss is
a mean over contexts, so the batch loss is ``sum_g (|g| / B) loss_g``. The
contexts, their order of sampling and the random stream are those of the
padded batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from did_core.tasks import Context, ContextSampler, context_size, index_context

__all__ = ["size_groups", "grouped", "grouped_members"]


def size_groups(extents: Tensor, max_groups: int, min_saving: int = 0) -> list[tuple[Tensor, tuple[int, ...]]]:
    """Partition contexts by size into at most ``max_groups`` groups with little padded work.

    **Arguments:** ``extents [B, K]``: the real length of each of ``K`` padded
    dimensions per context (e.g. each player's action count).

    **Returns:** per group, the context indices ``[B_g]`` (ascending) and the
    group's extents ``(K,)`` (the maximum over its members), in a deterministic
    order. Greedy binary splitting: while fewer than ``max_groups`` groups exist,
    make the one cut ``extent_k <= t`` of one group that removes the most padded
    work ``|g| * prod_k max extent_k``, if it removes more than ``min_saving``
    (the fixed cost of one more group, in the same units).
    """
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    sizes = extents.detach().cpu().numpy().astype(np.int64)
    groups = [np.arange(sizes.shape[0])]
    while len(groups) < max_groups:
        best: tuple[int, int, np.ndarray, np.ndarray] | None = None
        for g, members in enumerate(groups):
            whole = len(members) * int(sizes[members].max(axis=0).prod())
            for k in range(sizes.shape[1]):
                ranked = members[np.argsort(sizes[members, k], kind="stable")]
                own = sizes[ranked]
                low = np.maximum.accumulate(own, axis=0).prod(axis=1)  # [i]: members 0..i
                high = np.maximum.accumulate(own[::-1], axis=0)[::-1].prod(axis=1)  # [i]: members i..
                cut = np.flatnonzero(own[1:, k] > own[:-1, k]) + 1  # first member above the threshold
                if not len(cut):
                    continue
                saved = whole - cut * low[cut - 1] - (len(members) - cut) * high[cut]
                i = int(saved.argmax())
                if saved[i] > max(min_saving, 0) and (best is None or saved[i] > best[0]):
                    best = (int(saved[i]), g, np.sort(ranked[: cut[i]]), np.sort(ranked[cut[i]:]))
        if best is None:
            break
        _, g, low_members, high_members = best
        groups[g : g + 1] = [low_members, high_members]
    return [(torch.from_numpy(m), tuple(int(v) for v in sizes[m].max(axis=0))) for m in groups]


def grouped_members(sampler: ContextSampler, context: Context, max_groups: int, min_saving: int = 0
                    ) -> Iterator[tuple[Tensor | None, Context]]:
    """The batch as size groups (:func:`size_groups`): ``(members [g], cropped sub-context)``, so that rows of a
    tensor beside the contexts (e.g. stored targets) can follow them.

    A sampler that cannot crop (:meth:`ContextSampler.extents` is ``None``), or
    ``max_groups == 1``, yields the whole batch as it is, with members ``None``.
    """
    extents = sampler.extents(context) if max_groups > 1 else None
    if extents is None:
        yield None, context
        return
    for members, lengths in size_groups(extents, max_groups, min_saving):
        yield members, sampler.crop(index_context(context, members), lengths)


def grouped(sampler: ContextSampler, context: Context, max_groups: int, min_saving: int = 0
            ) -> Iterator[tuple[float, Context]]:
    """The batch as size groups (:func:`grouped_members`): ``(weight, cropped sub-context)``, weights ``|g| / B``
    (1 for the whole batch)."""
    batch = context_size(context)
    for members, group in grouped_members(sampler, context, max_groups, min_saving):
        yield (1.0 if members is None else len(members) / batch), group
