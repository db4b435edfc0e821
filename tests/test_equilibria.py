"""Equilibrium math against the definitions (independent loops in tests/reference.py) and known games."""

import numpy as np
import pytest
import torch

from did_core.equilibria import (
    Epsilon, constraints, dual_objective, entropy, gap, joint_from_dual, kl_divergence, regrets,
    violation,
)
from did_core.plugins import get_concept
from did_core.games import check_games, classic_game, embed, full_mask, player_scale
from did_core.testing import reference_rows, reference_scale


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("sizes", [(2, 2), (3, 2), (2, 3, 2), (4,)])
def test_gains_match_definition(concept, sizes):
    g = torch.randn(1, len(sizes), *sizes, dtype=torch.float64)
    cons = constraints(g, full_mask(g), get_concept(concept), Epsilon(0.05))
    rows, _ = reference_rows(g[0].numpy(), concept)
    ours = cons.gains[0][cons.rows[0]].numpy()
    assert ours.shape == (len(rows), int(np.prod(sizes)))
    np.testing.assert_allclose(ours, np.array(rows), atol=1e-12)


def test_scale_and_embedding():
    g = torch.randn(3, 2, 3, 4, dtype=torch.float64)
    s = player_scale(g, full_mask(g))
    for b in range(3):
        np.testing.assert_allclose(s[b].numpy(), reference_scale(g[b].numpy()), rtol=1e-12)
    e = embed(g, full_mask(g))
    np.testing.assert_allclose(player_scale(e, full_mask(e)).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(e[:, 0].mean(dim=1).numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(e[:, 1].mean(dim=2).numpy(), 0.0, atol=1e-12)


def test_pure_nash_of_prisoners_dilemma_is_exact_equilibrium():
    g = classic_game("prisoners_dilemma").unsqueeze(0)
    cons = constraints(g, full_mask(g), get_concept("ce"), Epsilon(1e-3, relative=False))
    defect = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    cooperate = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert gap(defect, cons).item() == pytest.approx(0.0)
    # Defecting from mutual cooperation gains 5 - 3 = 2 for either player.
    assert gap(cooperate, cons).item() == pytest.approx(2.0)
    assert violation(cooperate, cons).item() == pytest.approx(2.0 - 1e-3)


def test_dual_at_zero_is_uniform_and_objective_zero():
    g = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    cons = constraints(g, full_mask(g), get_concept("cce"), Epsilon(0.1))
    alpha = torch.zeros(2, cons.gains.shape[1], dtype=torch.float64)
    np.testing.assert_allclose(joint_from_dual(alpha, cons).numpy(), 1 / 9)
    np.testing.assert_allclose(dual_objective(alpha, cons).numpy(), 0.0, atol=1e-12)


def test_dual_gradient_is_eps_minus_regret():
    g = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    cons = constraints(g, full_mask(g), get_concept("ce"), Epsilon(0.1))
    alpha = torch.rand(1, cons.gains.shape[1], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(dual_objective(alpha, cons).sum(), alpha)
    expected = (cons.eps - regrets(joint_from_dual(alpha, cons), cons)) * cons.rows
    np.testing.assert_allclose((grad * cons.rows).numpy(), expected.detach().numpy(), atol=1e-12)


def test_entropy_and_kl():
    p = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64)
    assert entropy(p).item() == pytest.approx(np.log(2))
    assert kl_divergence(p, q).item() == pytest.approx(np.log(2))


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.randn(2, 2, 3), "action axes"),
        (torch.tensor([[[[float("nan"), 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]]), "NaN"),
        (torch.zeros(1, 2, 0, 2), "at least one action"),
        (torch.zeros(1, 2, 2, 2, dtype=torch.long), "floating"),
    ],
)
def test_bad_games_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        check_games(bad)


def test_bad_mask_and_concept_and_eps():
    g = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="mask must have shape"):
        check_games(g, torch.ones(1, 2, 3, dtype=torch.bool))
    with pytest.raises(LookupError, match="unknown concept 'nash'"):
        get_concept("nash")
    with pytest.raises(ValueError, match="eps"):
        Epsilon(0.0)
