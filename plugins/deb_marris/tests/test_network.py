"""Equivariance, masking and the output being a distribution (float64, small random networks)."""

import torch

from conftest import small_net
from did_core.games import embed, normal_games, padded_random_games
from did_deb_marris import DebMarrisBlock
from did_core.plugins import get_concept


def _games(sizes, batch=3, seed=0):
    return embed(normal_games(batch, sizes, generator=torch.Generator().manual_seed(seed)))


def test_action_permutation_equivariance(concept):
    net = small_net(concept)
    games = _games([4, 5])
    mask = torch.ones(3, 2, 5, dtype=torch.bool)
    mask[:, 0, 4] = False
    games = torch.cat([games, games.new_zeros(3, 2, 1, 5)], dim=2)  # pad player 0 to 5 actions
    alpha = net(games, mask)
    perm0 = torch.tensor([2, 0, 3, 1, 4])  # permute player 0's real actions, keep the padded one last
    perm1 = torch.randperm(5, generator=torch.Generator().manual_seed(3))
    permuted = games[:, :, perm0][:, :, :, perm1]
    alpha_p = net(permuted, mask)
    if concept == "cce":
        expected = torch.stack([alpha[:, 0][:, perm0], alpha[:, 1][:, perm1]], dim=1)
    else:
        expected = torch.stack([alpha[:, 0][:, perm0][:, :, perm0], alpha[:, 1][:, perm1][:, :, perm1]], dim=1)
    assert torch.allclose(alpha_p, expected, atol=1e-10)
    assert alpha.abs().max() > 1e-3


def test_player_permutation_equivariance(concept):
    net = small_net(concept)
    games = _games([5, 5])
    mask = torch.ones(3, 2, 5, dtype=torch.bool)
    alpha = net(games, mask)
    swapped = games[:, [1, 0]].transpose(2, 3)
    alpha_s = net(swapped, mask)
    assert torch.allclose(alpha_s, alpha[:, [1, 0]], atol=1e-10)


def test_block_equivariance_on_sigma(concept, random_weights):
    block = DebMarrisBlock(weights=str(random_weights))
    games = normal_games(2, [3, 4], generator=torch.Generator().manual_seed(1))
    sigma = block(games, concept=get_concept(concept)).sigma
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(block(games[:, :, :, perm], concept=get_concept(concept)).sigma, sigma[:, :, perm], atol=1e-10)
    swapped = games[:, [1, 0]].transpose(2, 3)
    assert torch.allclose(block(swapped, concept=get_concept(concept)).sigma, sigma.transpose(1, 2), atol=1e-10)


def test_padded_game_equals_cut_game(concept, random_weights):
    block = DebMarrisBlock(weights=str(random_weights))
    gen = torch.Generator().manual_seed(2)
    cut = normal_games(2, [3, 4], generator=gen)
    padded = torch.randn(2, 2, 6, 6, generator=gen, dtype=torch.float64) * 100  # garbage in the padding
    padded[:, :, :3, :4] = cut
    mask = torch.zeros(2, 2, 6, dtype=torch.bool)
    mask[:, 0, :3] = True
    mask[:, 1, :4] = True
    eq_pad = block(padded, mask, concept=get_concept(concept))
    eq_cut = block(cut, concept=get_concept(concept))
    assert torch.allclose(eq_pad.sigma[:, :3, :4], eq_cut.sigma, atol=1e-10)
    assert eq_pad.sigma[:, 3:].abs().max() == 0 and eq_pad.sigma[:, :, 4:].abs().max() == 0
    rows = get_concept(concept).dual_mask(mask)
    assert eq_pad.alpha[~rows].abs().max() == 0
    if concept == "cce":
        assert torch.allclose(eq_pad.alpha[:, 0, :3], eq_cut.alpha[:, 0, :3], atol=1e-10)
    else:
        assert torch.allclose(eq_pad.alpha[:, 1, :4, :4], eq_cut.alpha[:, 1, :4, :4], atol=1e-10)


def test_output_is_a_distribution(concept, random_weights):
    block = DebMarrisBlock(weights=str(random_weights))
    games, mask = padded_random_games(5, 2, 2, 6, generator=torch.Generator().manual_seed(4), embedded=False)
    eq = block(games * 7.0 + 3.0, mask, concept=get_concept(concept))
    flat = eq.sigma.reshape(5, -1)
    assert (flat >= 0).all()
    assert torch.allclose(flat.sum(1), torch.ones(5, dtype=flat.dtype))
    assert (eq.alpha >= 0).all()
    assert set(eq.info) >= {"gap", "violation", "entropy", "active"}
