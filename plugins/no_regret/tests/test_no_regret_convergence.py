"""Convergence: the gaps fall as T grows, the target at T = 1000, classic games, the swap-regret learner."""

import numpy as np
import pytest
import torch

from did_core.plugins import get_concept
from did_core.games import classic_game, full_mask
from did_no_regret import NoRegretBlock
from did_no_regret.learners import _Stationary
from did_no_regret.measure import random_unit_games
from no_regret_helpers import batch_reference_gaps

LEARNERS = ["hedge", "regret_matching", "regret_matching_plus"]


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("n_players, max_actions", [(2, 6), (3, 4)])
def test_cce_gap_falls_as_rounds_grow(learner, n_players, max_actions):
    games, mask = random_unit_games(16, n_players, max_actions, seed=10 + n_players)
    means = []
    for rounds in (10, 100, 1000):
        eq = NoRegretBlock(rounds=rounds, learner=learner)(games, mask, concept=get_concept("cce"))
        gaps = batch_reference_gaps(eq.sigma, games, mask, "cce")
        np.testing.assert_allclose(eq.info["gap"].numpy(), gaps, atol=1e-12)  # the block's report is right
        np.testing.assert_allclose(eq.info["cce_gap"].numpy(), gaps, atol=1e-12)
        means.append(gaps.mean())
    assert means[0] > means[1] > means[2], means
    assert means[2] < 0.3 * means[0], means


@pytest.mark.parametrize("n_players", [2, 3])
def test_target_mean_cce_gap_at_1000_rounds(n_players):
    """The issue's target: mean CCE gap <= 0.01 after 1000 rounds, unit-range payoffs, up to 8 actions.

    Measured (``python -m did_no_regret.measure``, 64 games each, 2..8 actions per player): mean 0.0030
    (2 and 3 players), largest 0.0040."""
    games, mask = random_unit_games(24 if n_players == 2 else 8, n_players, 8, seed=n_players)
    eq = NoRegretBlock()(games, mask, concept=get_concept("cce"))
    gaps = batch_reference_gaps(eq.sigma, games, mask, "cce")
    print(f"\n{n_players} players: mean CCE gap {gaps.mean():.4f}, max {gaps.max():.4f}")
    assert gaps.mean() <= 0.01 and gaps.max() <= 0.02


@pytest.mark.parametrize("learner", LEARNERS)
def test_ce_gap_of_the_swap_learner_falls_as_rounds_grow(learner):
    games, mask = random_unit_games(12, 2, 5, seed=3)
    means = []
    for rounds in (10, 100, 1000):
        eq = NoRegretBlock(rounds=rounds, learner=learner)(games, mask, concept=get_concept("ce"))
        gaps = batch_reference_gaps(eq.sigma, games, mask, "ce")
        np.testing.assert_allclose(eq.info["gap"].numpy(), gaps, atol=1e-12)
        means.append(gaps.mean())
    assert means[0] > means[1] > means[2] and means[2] <= 0.01, means


@pytest.mark.parametrize("learner", LEARNERS)
def test_external_regret_play_can_miss_the_ce_that_the_swap_learner_finds(learner):
    """A 5x5 game (found by a search over 200 random ones) where the average of external-regret play is a
    CCE (gap < 0.005) but far from every CE (CE gap > 0.015); the swap learner's average is a CE."""
    games, mask = random_unit_games(200, 2, 5, seed=5, min_actions=5)
    games, mask = games[55:56], mask[55:56]
    external = NoRegretBlock(learner=learner)(games, mask, concept=get_concept("cce")).sigma
    swap = NoRegretBlock(learner=learner)(games, mask, concept=get_concept("ce")).sigma
    assert batch_reference_gaps(external, games, mask, "cce")[0] < 0.005
    assert batch_reference_gaps(external, games, mask, "ce")[0] > 0.015
    assert batch_reference_gaps(swap, games, mask, "ce")[0] < 0.005


def test_matching_pennies_and_rock_paper_scissors_converge_to_uniform():
    for name in ("matching_pennies", "rock_paper_scissors"):
        game = classic_game(name).unsqueeze(0)
        for concept in ("cce", "ce"):
            for learner in LEARNERS:
                sigma = NoRegretBlock(learner=learner)(game, concept=get_concept(concept)).sigma[0]
                assert torch.allclose(sigma, torch.full_like(sigma, 1 / sigma.numel()), atol=5e-3), (name, learner)


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_strictly_dominant_strategies_win(concept):
    pd = classic_game("prisoners_dilemma").unsqueeze(0)  # defect (action 1) strictly dominates
    masses = [float(NoRegretBlock(rounds=t)(pd, concept=get_concept(concept)).sigma[0, 1, 1]) for t in (100, 1000, 3000)]
    assert masses[0] < masses[1] < masses[2] and masses[1] > 0.98, masses
    # A random 3-player game in which action 2 of player 0 strictly dominates its others.
    games = torch.randn(4, 3, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    games[:, 0, 2] = games[:, 0].amax(dim=1) + 0.5
    marginal = NoRegretBlock()(games, concept=get_concept(concept)).sigma.sum(dim=(2, 3))[:, 2]
    assert bool((marginal > (0.97 if concept == "cce" else 0.95)).all()), marginal  # each swap copy learns it


def test_stationary_distribution_of_the_swap_learner():
    """x = x Q (up to the uniform mixing) on real actions, 0 on padded ones, also for a reducible Q."""
    gen = torch.Generator().manual_seed(7)
    mask = full_mask(torch.zeros(2, 2, 4, 4))
    mask[0, 1, 3] = False
    mask[1, 0, 2:] = False
    rows = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=gen) * mask.unsqueeze(2)
    rows[1, 1] = torch.eye(4, dtype=torch.float64)  # two (in fact four) closed classes
    rows = rows / rows.sum(dim=-1, keepdim=True)
    x = _Stationary(mask, torch.float64)(rows)
    assert torch.allclose(x.sum(dim=-1), torch.ones(2, 2, dtype=torch.float64))
    assert (x[~mask] == 0).all() and (x >= 0).all()
    residual = (torch.matmul(x.unsqueeze(-2), rows).squeeze(-2) - x)[0]
    assert residual.abs().max() < 1e-5
    assert torch.allclose(x[1, 1], torch.full((4,), 0.25, dtype=torch.float64))
