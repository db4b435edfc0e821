"""The block: scale handling, epsilon / size / weights errors, registration."""

import pickle

import pytest
import torch

from did_core.equilibria import Epsilon, constraints, dual_objective
from did_core.games import embed, normal_games
from did_core.plugins import get_concept, registry
from did_deb_marris import DebMarrisBlock, WeightsError, load_weights


def test_dual_is_rescaled_to_the_original_game(concept, random_weights):
    """alpha = alpha_Phi / s_p: f_G(alpha) equals f_Phi(alpha_Phi), sigma is invariant to G -> c_p G_p + h(a_-p)."""
    block = DebMarrisBlock(weights=str(random_weights))
    gen = torch.Generator().manual_seed(5)
    games = normal_games(3, [4, 3], generator=gen)
    scaled = games.clone()
    scaled[:, 0] = 10.0 * games[:, 0] + torch.randn(3, 1, 3, generator=gen, dtype=torch.float64)
    scaled[:, 1] = 0.1 * games[:, 1] - 4.0
    eq, eq_s = block(games, concept=get_concept(concept)), block(scaled, concept=get_concept(concept))
    assert torch.allclose(eq.sigma, eq_s.sigma, atol=1e-10)
    net, _ = load_weights(random_weights)
    net = net.double()
    mask = torch.ones(3, 2, 4, dtype=torch.bool)
    mask[:, 1, 3] = False
    padded = torch.nn.functional.pad(scaled, (0, 1))
    phi_p = embed(padded, mask)
    alpha_phi = net(phi_p, mask).reshape(3, -1)
    f_phi = dual_objective(alpha_phi, constraints(phi_p, mask, get_concept(concept), Epsilon(0.05)))
    eq_p = block(padded, mask, concept=get_concept(concept))
    f_g = dual_objective(eq_p.alpha.reshape(3, -1), constraints(padded, mask, get_concept(concept), Epsilon(0.05)))
    assert torch.allclose(f_g, f_phi, atol=1e-10)


def test_rejects_absolute_or_other_eps_and_big_games(concept, random_weights):
    block = DebMarrisBlock(weights=str(random_weights))
    games = normal_games(1, [3, 3])
    with pytest.raises(ValueError, match="relative epsilon only"):
        block(games, concept=get_concept(concept), eps=Epsilon(0.05, relative=False))
    with pytest.raises(ValueError, match="eps_rel=0.05"):
        block(games, concept=get_concept(concept), eps=0.1)
    with pytest.raises(ValueError, match="up to 6 actions"):
        block(normal_games(1, [7, 2]), concept=get_concept(concept))
    with pytest.raises(ValueError, match="2-player"):
        block(normal_games(1, [2, 2, 2]), concept=get_concept(concept))
    other = "ce" if concept == "cce" else "cce"
    with pytest.raises(ValueError, match=f"does not support concept '{other}'; it supports {concept}"):
        block(games, concept=get_concept(other))


def test_bad_weights_paths(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        DebMarrisBlock(weights=str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        DebMarrisBlock(weights=str(garbage))
    wrong = tmp_path / "wrong.pt"
    torch.save({"model": {}}, wrong)
    with pytest.raises(WeightsError, match="not a deb_marris weights file"):
        load_weights(wrong)
    code = tmp_path / "code.pt"
    code.write_bytes(pickle.dumps(WeightsError("executable pickle"), protocol=2))
    with pytest.raises(WeightsError, match="cannot load"):
        load_weights(code)  # weights_only refuses arbitrary objects
    mismatch = tmp_path / "mismatch.pt"
    torch.save({"format": "did-deb-marris/1", "model": {"x": torch.zeros(1)},
                "meta": {"net": {"concept": "cce", "width": 4}, "max_actions": 4, "eps_rel": 0.05}}, mismatch)
    with pytest.raises(WeightsError, match="do not match"):
        load_weights(mismatch)


def test_registered():
    assert "deb_marris" in registry("blocks")
    assert "deb" in registry("commands")
    block = registry("blocks").create("deb_marris")
    assert isinstance(block, DebMarrisBlock)
