"""Size groups: a partition of the batch, cropping that cuts only padding, and the same loss and gradient.

Truth: the padded batch run as one group (every task's loss is a mean over
contexts, and padding changes no result), and brute force over small partitions.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from did_core.config import resolve_train_config
from did_core.grouping import grouped, size_groups
from did_core.plugins import registry
from did_core.train import build_components, training_step

# The toy task (tests/toys.py) always; the plugins' tasks when they are installed.
TASKS = ["toy_task", "inverse", "contract", "scheduling"]


def _work(extents: torch.Tensor, groups) -> int:
    return sum(len(members) * math.prod(lengths) for members, lengths in groups)


@pytest.mark.parametrize("max_groups", [1, 2, 3, 5, 64])
def test_groups_partition_the_batch_and_bound_their_members(max_groups: int) -> None:
    extents = torch.randint(1, 9, (37, 3), generator=torch.Generator().manual_seed(max_groups))
    groups = size_groups(extents, max_groups)
    assert 1 <= len(groups) <= max_groups
    assert sorted(torch.cat([m for m, _ in groups]).tolist()) == list(range(37))
    for members, lengths in groups:
        assert members.tolist() == sorted(members.tolist())
        assert list(lengths) == extents[members].amax(dim=0).tolist()
    assert _work(extents, groups) <= 37 * math.prod(extents.amax(dim=0).tolist())


def test_two_size_clusters_are_found_exactly() -> None:
    small = torch.tensor([[2, 3]] * 5)
    large = torch.tensor([[9, 8]] * 4)
    extents = torch.cat([large[:2], small, large[2:]])
    groups = size_groups(extents, 2)
    assert sorted(tuple(lengths) for _, lengths in groups) == [(2, 3), (9, 8)]
    assert _work(extents, groups) == 5 * 6 + 4 * 72


def test_greedy_groups_are_close_to_the_best_partition_of_a_small_batch() -> None:
    extents = torch.tensor([[2, 7], [3, 3], [7, 2], [6, 6], [2, 2], [5, 1], [1, 5]])
    best = math.inf
    for labels in itertools.product(range(3), repeat=len(extents)):
        parts = [torch.tensor([i for i, l in enumerate(labels) if l == g]) for g in range(3)]
        parts = [p for p in parts if len(p)]
        best = min(best, _work(extents, [(p, extents[p].amax(dim=0).tolist()) for p in parts]))
    assert _work(extents, size_groups(extents, 3)) <= 1.25 * best


def test_bad_group_count_is_refused() -> None:
    with pytest.raises(ValueError, match="max_groups"):
        size_groups(torch.ones(3, 2, dtype=torch.long), 0)


def _parts(task: str):
    if task not in registry("tasks"):
        pytest.skip(f"task {task!r} is not loaded (did-plugins-{task} not installed, or left out by DID_LOAD_PLUGINS)")
    # The block is the preferred installed exact block (toy_exact without plugins).
    cfg = resolve_train_config({"task": task, "profile": "quick", "concept": "cce",
                                "sampler_options": {"min_actions": 1, "max_actions": 5} if task != "scheduling"
                                else {"min_machines": 1, "max_machines": 5}})
    parts = build_components(cfg)
    parts.generator.double()
    return parts


@pytest.mark.parametrize("task", TASKS)
def test_cropping_cuts_only_padding(task: str) -> None:
    parts = _parts(task)
    context = parts.sampler.sample(24, torch.Generator().manual_seed(3))
    for _, group in grouped(parts.sampler, context, 4):
        lengths = parts.sampler.extents(group).amax(dim=0).tolist()
        for key, axes in parts.sampler.padded_axes().items():
            for axis, dims in axes.items():
                assert group[key].shape[axis] == max(lengths[d] for d in dims), (key, axis)
    totals = {k: sum(float(g[k].double().abs().sum()) for _, g in grouped(parts.sampler, context, 4))
              for k in context}
    for key, value in context.items():
        assert totals[key] == pytest.approx(float(value.double().abs().sum()), rel=1e-12), key


@pytest.mark.parametrize("task", TASKS)
def test_grouped_step_gives_the_padded_loss_and_gradient(task: str) -> None:
    parts = _parts(task)
    context = parts.sampler.sample(24, torch.Generator().manual_seed(5))
    results = []
    for max_groups in (1, 4):
        parts.generator.zero_grad(set_to_none=True)
        scalars = training_step(parts, context, 0.3, max_groups)
        grads = torch.cat([p.grad.flatten() for p in parts.generator.parameters() if p.grad is not None])
        results.append((scalars, grads))
    (padded, g_padded), (groups, g_groups) = results
    assert len(list(grouped(parts.sampler, context, 4))) > 1
    assert groups["loss"] == pytest.approx(padded["loss"], rel=1e-7, abs=1e-9)
    assert set(groups) == set(padded)
    for name in padded:
        assert groups[name] == pytest.approx(padded[name], rel=1e-6, abs=1e-8), name
    assert torch.allclose(g_groups, g_padded, rtol=1e-6, atol=1e-9 * float(g_padded.abs().max()))
