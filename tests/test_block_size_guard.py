"""The blocks' size guard: what a call's size is, how a block's estimate and limit refuse it, and where."""

from __future__ import annotations

import pytest
import torch
import yaml

import toys
from did_core.blocks import SolveSize, SolveTooLarge, memory_limit
from did_core.cli import main
from did_core.concepts import DenseOperator, StackedOperator
from did_core.plugins import get_concept
from did_core.equilibria import Epsilon, constraints
from did_core.games import full_mask
from run_helpers import TINY, snapshot


def _operator(concept: str, sizes: tuple[int, ...]):
    games = torch.randn(2, len(sizes), *sizes, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return get_concept(concept).operator(games, full_mask(games))


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("sizes", [(3, 3), (4, 2), (2, 3, 2)])
def test_nonzeros_bound_the_dense_rows_without_forming_them(concept, sizes):
    op = _operator(concept, sizes)
    dense = int((op.dense() != 0).flatten(1).sum(dim=1).max())
    assert dense <= op.nonzeros() <= op.n_rows * op.joints
    if concept == "ce":  # row (p, r, d) lives on the slice a_p = r
        assert op.nonzeros() == sum(op.rows_per_player * op.joints // a for a in sizes)


def test_nonzeros_of_explicit_and_stacked_rows():
    cce = _operator("cce", (3, 3))
    extra = DenseOperator.extra_rows(cce, torch.eye(9, dtype=torch.float64).expand(2, -1, -1))
    assert extra.nonzeros() == 9
    assert StackedOperator([cce, extra]).nonzeros() == cce.nonzeros() + 9


def test_solve_size_of_a_constraint_system():
    games = torch.zeros(5, 2, 4, 3, dtype=torch.float64)
    size = SolveSize.of(constraints(games, full_mask(games), get_concept("ce"), Epsilon()), grad=True)
    assert (size.batch, size.players, size.sizes, size.joints, size.rows, size.concept, size.grad) == (
        5, 2, (4, 3), 12, 32, "ce", True)
    assert size.describe() == "a batch of 5 2-player 4x3 games (ce: 12 joint actions, 32 rows each)"


class _Estimating(toys.ToyExactBlock):
    """``toy_exact`` with an estimate: a GiB per game, and 100 GiB per game with a graph."""

    max_memory_gb = 4.0

    def memory_bytes(self, size: SolveSize) -> float:
        return size.batch * (100 if size.grad else 1) * 2.0**30


def test_a_call_over_the_limit_is_refused_in_one_line_before_solving():
    games = torch.randn(5, 2, 2, 2, dtype=torch.float64)
    with pytest.raises(SolveTooLarge) as refused:
        _Estimating()(games, concept=get_concept("cce"))
    message = str(refused.value)
    assert "\n" not in message and message.startswith("block 'toy_exact': a batch of 5 2-player 2x2 games (cce:")
    assert "would need about 5 GiB of memory, over its limit of 4 GiB" in message
    assert "--block-options '{max_memory_gb: 5}'" in message
    assert _Estimating()(games[:4], concept=get_concept("cce")).sigma.shape == (4, 2, 2)  # at the limit: solved
    size = SolveSize.of(constraints(games, full_mask(games), get_concept("cce"), 0.05))
    assert toys.ToyExactBlock().memory_bytes(size) is None


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "4", True, None])
def test_memory_limits_are_finite_positive_numbers(value):
    with pytest.raises(ValueError, match="max_memory_gb must be a number of GiB > 0"):
        memory_limit(value)


def test_did_train_refuses_batches_too_large_to_backpropagate_before_writing(tmp_path, monkeypatch, capsys):
    """Two contexts without a graph pass the components' check; a whole batch with one does not."""
    monkeypatch.setattr(toys.ToyExactBlock, "max_memory_gb", 4.0)
    monkeypatch.setattr(toys.ToyExactBlock, "memory_bytes", _Estimating.memory_bytes)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "block": toys.TOY_BLOCK, "exact_block": toys.TOY_BLOCK}))
    before = snapshot(tmp_path)
    assert main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("did: error: block 'toy_exact': a batch of 4 2-player 2x2 games") and err.count("\n") == 1
    assert "would need about 400 GiB" in err and snapshot(tmp_path) == before
