"""The exact blocks refuse games too large for them in one line, and take every size the tasks' paper profiles use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from did_core.blocks import SolveSize, SolveTooLarge
from did_core.cli import main
from did_core.equilibria import Epsilon, constraints
from did_core.plugins import get_concept, registry
from did_exact_cvx import EcosBlock, NewtonBlock


def _size(n: int, concept: str, batch: int = 1, players: int = 2) -> SolveSize:
    games = torch.zeros(1, players, *[n] * players, dtype=torch.float64)
    size = SolveSize.of(constraints(games, torch.ones(1, players, n, dtype=torch.bool), get_concept(concept),
                                        Epsilon()))
    return SolveSize(batch, size.players, size.sizes, size.joints, size.rows, size.nonzeros, concept)


def _paper_batches() -> list[tuple[str, SolveSize]]:
    """One training batch of every installed task's paper profile (its sampler's padding), as a solve size."""
    out = []
    for entry in registry("tasks"):
        task = entry.value
        sampler = task.sampler(**getattr(task.sampler, "PROFILES", {}).get("paper", {}))
        batch = task.train_profiles.get("paper", {}).get("batch_size", 64)
        context = sampler.sample(batch, torch.Generator().manual_seed(0))
        objective = task.objective()
        games, mask = objective.induce(context, objective.baseline_intervention(context))
        for concept in ("ce", "cce"):
            cons = constraints(games.double(), mask, get_concept(concept), Epsilon())
            out.append((f"{entry.name}-{concept}", SolveSize.of(cons, grad=True)))
    return out


PAPER = _paper_batches()


@pytest.mark.parametrize("size", [size for _, size in PAPER], ids=[name for name, _ in PAPER])
def test_newton_takes_every_paper_profile_batch(size):
    NewtonBlock().check_size(size)


@pytest.mark.parametrize("block, largest", [(NewtonBlock, 60), (EcosBlock, 22)])
@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_default_limits(block, largest, concept):
    """Newton: 16x16 (the paper profiles) and well beyond; ECOS: what it compiles in a few GiB (22x22, ~10 s).
    Neither takes a 200x200 CE game (80000 rows)."""
    block().check_size(_size(16, concept, batch=64 if block is NewtonBlock else 1))
    block().check_size(_size(largest, concept))
    with pytest.raises(SolveTooLarge):
        block().check_size(_size(200, "ce"))


def test_the_ecos_estimate_matches_what_cvxpy_asks_for():
    """A 32x32 CE program makes cvxpy allocate 30 GiB in one array (measured with cvxpy 1.9): the estimate is close."""
    assert math.isclose(EcosBlock().memory_bytes(_size(32, "ce")) / 2**30, 32, rel_tol=0.1)


@pytest.mark.parametrize("block, n, limit", [("exact_newton", 200, "16 GiB"), ("exact_cvx", 32, "4 GiB")])
def test_did_solve_refuses_a_game_too_large_in_one_line(tmp_path, capsys, block, n, limit):
    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(0).standard_normal((2, n, n)))
    assert main(["solve", str(path), "--block", block, "--concept", "ce"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"did: error: block {block!r}: a 2-player {n}x{n} game (ce:") and err.count("\n") == 1
    assert f"over its limit of {limit}" in err and "--block-options '{max_memory_gb:" in err


def test_a_raised_limit_lets_the_game_through_and_a_lowered_one_refuses(tmp_path, capsys):
    path = tmp_path / "game.npy"
    np.save(path, np.random.default_rng(1).standard_normal((2, 6, 6)))
    assert main(["solve", str(path), "--block", "exact_cvx", "--block-options", "{max_memory_gb: 0.001}"]) == 2
    assert "over its limit of 0.001 GiB" in capsys.readouterr().err
    assert main(["solve", str(path), "--block", "exact_newton", "--block-options", "{max_memory_gb: 64}"]) == 0


@pytest.mark.parametrize("block", [NewtonBlock, EcosBlock])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "8", True, None])
def test_invalid_memory_limits_are_refused(block, value):
    with pytest.raises(ValueError, match="max_memory_gb must be a number of GiB > 0"):
        block(max_memory_gb=value)
