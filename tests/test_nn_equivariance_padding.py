"""Tests of the masked equivariant layers (``did_core.nn``): equivariance and padding, in float64 on tiny games.

Truth is independent of the implementation: layers against permuted inputs
(equivariance) and against the same game cut to its real size (padding).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from did_core.plugins import get_concept
from did_core.nn import AGGREGATIONS
from nn_helpers import (
    CASE_IDS,
    CASES,
    DTYPE,
    OUTCOMES,
    SIZES,
    Case,
    cut_to_real,
    equivariance_inputs,
    pad_zeros,
    permute_actions,
    permute_outcomes,
    permute_players,
    seeded,
    size_mask,
)


# ----------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_permuting_a_players_actions_permutes_the_output(case: Case, sizes: tuple[int, ...]) -> None:
    layer = case.layer()
    x, mask = equivariance_inputs(case, sizes, seed=10)
    out = case(layer, x, mask, None)
    for player, size in enumerate(sizes):
        perm = torch.randperm(size, generator=seeded(20 + player))
        if size > 1 and torch.equal(perm, torch.arange(size)):
            perm = perm.roll(1)
        got = case(layer, permute_actions(x, case.source, player, perm), mask, None)
        assert torch.allclose(got, permute_actions(out, case.target, player, perm), atol=1e-12)


@pytest.mark.parametrize("sizes", SIZES[1:], ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_permuting_players_permutes_the_output(case: Case, sizes: tuple[int, ...]) -> None:
    layer = case.layer()
    x, mask = equivariance_inputs(case, sizes, seed=11)
    out = case(layer, x, mask, None)
    for sigma in itertools.permutations(range(len(sizes))):
        x_perm = permute_players(x, case.source, sigma)
        got = case(layer, x_perm, mask[:, list(sigma)], None)
        assert torch.allclose(got, permute_players(out, case.target, sigma), atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.source in ("po", "outcome")], ids=lambda c: c.name)
def test_permuting_outcomes_permutes_the_output(case: Case) -> None:
    layer = case.layer()
    x, mask = equivariance_inputs(case, (2, 3), seed=12)
    out = case(layer, x, mask, None)
    perm = torch.tensor([2, 0, 1])
    got = case(layer, permute_outcomes(x, case.source, perm), mask, None)
    assert torch.allclose(got, permute_outcomes(out, case.target, perm), atol=1e-12)


def test_harness_catches_players_pooled_at_a_shared_dual_index() -> None:
    """Sanity check of the harness: a non-equivariant map fails the action-permutation test."""
    y = torch.randn(1, 1, 2, 3, generator=seeded(13), dtype=DTYPE)
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
    mask = size_mask(counts, a_max)
    outcome_mask = torch.arange(OUTCOMES).unsqueeze(0) < torch.tensor(outcome_counts).unsqueeze(1)
    x = case.input(batch, axis_sizes, OUTCOMES, seeded(30))
    garbage = 1e3 * case.input(batch, axis_sizes, OUTCOMES, seeded(31))
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
        cut_mask = size_mask([counts[b]], max(counts[b]))
        cut_out = case(layer, cut_x, cut_mask, None)
        assert torch.allclose(out[b : b + 1], pad_zeros(cut_out, out[b : b + 1].shape), atol=1e-10), b


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_padded_outputs_are_exactly_zero(case: Case) -> None:
    axis_sizes, counts = PADDED[1]
    mask = size_mask(counts, max(axis_sizes))
    outcome_mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])
    x = case.input(len(counts), axis_sizes, OUTCOMES, seeded(32))
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
    mask = size_mask(counts, 3)
    games = torch.randn(2, 2, 3, 3, generator=seeded(33), dtype=DTYPE)
    rows = constraints(games, mask, get_concept(concept), Epsilon()).rows  # type: ignore[arg-type]
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
