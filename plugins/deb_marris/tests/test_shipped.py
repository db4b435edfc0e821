"""The shipped weights: load with weights_only, beat the uniform joint, give useful gradients."""

import pytest
import torch

from did_core.equilibria import Epsilon, constraints, dual_objective, kl_divergence
from did_core.games import normal_games
from did_core.plugins import create, get_concept
from did_deb_marris import DebMarrisBlock, shipped_weights


@pytest.fixture(scope="module")
def exact():
    return create("blocks", "exact_cvx")


def test_shipped_weights_load_with_weights_only(concept):
    data = torch.load(shipped_weights(concept), map_location="cpu", weights_only=True)
    assert data["meta"]["concept"] == concept
    assert data["meta"]["max_actions"] == 16 and data["meta"]["eps_rel"] == 0.05


@pytest.mark.parametrize("sizes", [[2, 2], [3, 5], [8, 8], [16, 11]])
def test_shipped_beats_uniform(concept, sizes, exact):
    games = normal_games(4, sizes, generator=torch.Generator().manual_seed(sum(sizes)))
    eq_b = DebMarrisBlock()(games, concept=get_concept(concept))
    eq_x = exact(games, concept=get_concept(concept))
    cons = constraints(games, _mask(sizes)[:, :, : max(sizes)], get_concept(concept), Epsilon(0.05))
    f_block = dual_objective(eq_b.alpha.reshape(4, -1), cons)
    f_exact = dual_objective(eq_x.alpha.reshape(4, -1), cons)
    f_uniform = torch.zeros(4, dtype=games.dtype)  # f(0) = logsumexp(log uniform) = 0
    assert (f_block - f_exact).mean() < (f_uniform - f_exact).mean()
    uniform = torch.full_like(eq_x.sigma, 1.0 / eq_x.sigma[0].numel())
    assert kl_divergence(eq_x.sigma, eq_b.sigma).mean() < kl_divergence(eq_x.sigma, uniform).mean()


def _mask(sizes):
    mask = torch.zeros(4, 2, max(sizes), dtype=torch.bool)
    for p, s in enumerate(sizes):
        mask[:, p, :s] = True
    return mask


def test_gradients_agree_with_exact_block(concept, exact):
    gen = torch.Generator().manual_seed(11)
    games = normal_games(6, [4, 4], generator=gen)
    weight = torch.randn(6, 4, 4, generator=gen, dtype=torch.float64)
    grads = []
    for block in (DebMarrisBlock(), exact):
        g = games.clone().requires_grad_(True)
        loss = (block(g, concept=get_concept(concept)).sigma * weight).sum()
        (grad,) = torch.autograd.grad(loss, g)
        grads.append(grad.reshape(6, -1))
    assert torch.isfinite(grads[0]).all()
    cos = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=1)
    assert cos.mean() > 0, cos
