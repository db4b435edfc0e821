"""The ECOS exact block against an independent solver, known games, invariances and finite differences."""

import numpy as np
import pytest
import torch

from did_core.plugins import get_concept
from did_core.equilibria import Epsilon
from did_core.games import classic_game, embed, full_mask
from did_core.testing import reference_solve
from did_exact_cvx import EcosBlock

BLOCK = EcosBlock()


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("sizes", [(2, 2), (3, 3), (4, 2), (2, 2, 2), (2, 3, 2)])
def test_matches_reference_solver(concept, sizes):
    g = torch.randn(2, len(sizes), *sizes, dtype=torch.float64)
    eq = BLOCK(g, concept=get_concept(concept), eps=0.1)
    for b in range(2):
        ref = reference_solve(g[b].numpy(), concept, 0.1)
        np.testing.assert_allclose(eq.sigma[b].numpy(), ref, atol=2e-5)
    assert eq.info["violation"].max() < 1e-7


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_dominant_strategy_game_concentrates(concept):
    eq = BLOCK(classic_game("prisoners_dilemma").unsqueeze(0), concept=get_concept(concept), eps=Epsilon(1e-3, relative=False))
    # The only exact (C)CE is mutual defection (index 3): mass elsewhere is O(eps).
    assert eq.sigma.flatten()[3] > 0.99


@pytest.mark.parametrize("name", ["matching_pennies", "rock_paper_scissors"])
def test_zero_sum_symmetric_games_have_uniform_equilibrium(name):
    g = classic_game(name).unsqueeze(0)
    for concept in ("ce", "cce"):
        eq = BLOCK(g, concept=get_concept(concept), eps=0.01)
        np.testing.assert_allclose(eq.sigma.numpy(), 1 / eq.sigma[0].numel(), atol=1e-6)


def test_battle_of_sexes_ce_prefers_coordination():
    eq = BLOCK(classic_game("battle_of_sexes").unsqueeze(0), concept=get_concept("ce"), eps=Epsilon(1e-3, relative=False))
    s = eq.sigma[0]
    # CE of battle of the sexes weight coordination at least as much as miscoordination.
    assert s[0, 0] + s[1, 1] > s[0, 1] + s[1, 0]
    np.testing.assert_allclose(s.numpy(), reference_solve(classic_game("battle_of_sexes").numpy(), "ce", 1e-3, False),
                               atol=2e-5)


def test_three_player_game_matches_reference():
    g = classic_game("three_player_majority")
    g = g + 0.3 * torch.randn_like(g)
    for concept in ("ce", "cce"):
        eq = BLOCK(g.unsqueeze(0), concept=get_concept(concept), eps=0.05)
        np.testing.assert_allclose(eq.sigma[0].numpy(), reference_solve(g.numpy(), concept, 0.05), atol=2e-5)


def test_invariance_under_embedding_scaling_and_offsets():
    g = torch.randn(3, 2, 3, 4, dtype=torch.float64)
    scaled = g * torch.tensor([2.5, 0.3], dtype=torch.float64).view(1, 2, 1, 1)
    # Adding any function of the other player's action changes no deviation gain.
    offset = g.clone()
    offset[:, 0] += torch.randn(3, 1, 4, dtype=torch.float64)
    offset[:, 1] += torch.randn(3, 3, 1, dtype=torch.float64)
    for concept in ("ce", "cce"):
        base = BLOCK(g, concept=get_concept(concept)).sigma
        for other in (embed(g, full_mask(g)), scaled, offset):
            np.testing.assert_allclose(BLOCK(other, concept=get_concept(concept)).sigma.numpy(), base.numpy(), atol=2e-6)


def test_padded_game_equals_cut_game_and_has_no_padded_mass():
    cut = torch.randn(1, 2, 2, 3, dtype=torch.float64)
    padded = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    padded[:, :, :2, :3] = cut
    padded[:, :, 2:, :] = 7.0  # garbage on padded entries must not matter
    mask = torch.tensor([[[True, True, False, False], [True, True, True, False]]])
    for concept in ("ce", "cce"):
        eq = BLOCK(padded, mask, concept=get_concept(concept))
        np.testing.assert_allclose(eq.sigma[0, :2, :3].numpy(), BLOCK(cut, concept=get_concept(concept)).sigma[0].numpy(),
                                   atol=1e-6)
        assert eq.sigma[0, 2:, :].abs().max() == 0 and eq.sigma[0, :, 3:].abs().max() == 0


def test_player_with_a_single_action():
    g = torch.randn(1, 2, 1, 3, dtype=torch.float64)
    for concept in ("ce", "cce"):
        eq = BLOCK(g, concept=get_concept(concept), eps=0.05)
        np.testing.assert_allclose(eq.sigma[0].numpy(), reference_solve(g[0].numpy(), concept, 0.05), atol=2e-5)


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("sizes", [(3, 3), (2, 2, 2)])
def test_gradient_matches_central_finite_differences(concept, sizes):
    torch.manual_seed(1)
    g = torch.randn(1, len(sizes), *sizes, dtype=torch.float64)
    w = torch.randn(1, *sizes, dtype=torch.float64)

    def loss(games):
        return (BLOCK(games, concept=get_concept(concept), eps=0.1).sigma * w).sum()

    x = g.clone().requires_grad_(True)
    loss(x).backward()
    fd = torch.zeros_like(g)
    h = 1e-4  # ECOS is accurate to ~1e-8: a smaller step would measure its noise
    for i in range(g.numel()):
        e = torch.zeros(g.numel(), dtype=torch.float64)
        e[i] = h
        e = e.view_as(g)
        fd.view(-1)[i] = (loss(g + e) - loss(g - e)) / (2 * h)
    assert BLOCK(g, concept=get_concept(concept), eps=0.1).info["active"].min() > 0
    assert ((x.grad - fd).norm() / fd.norm()).item() < 1e-3
