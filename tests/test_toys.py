"""The test toys are right: the toy exact block against closed forms and independent references, the toy task's parts.

The other core tests lean on ``toy_exact`` when no exact plugin is installed, so it
is checked here without it or ``did_core.equilibria``: closed forms (matching
pennies, the prisoners' dilemma), a KKT certificate on rows written with plain loops
(``did_core.testing.reference_rows``), and the Clarabel reference when cvxpy is there.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import toys

from did_core.blocks import capabilities_of
from did_core.games import classic_game
from did_core.plugins import create, exact_block_for, get_concept, registry
from did_core.testing import reference_rows, reference_scale


def _toy(**options):
    return create("blocks", toys.TOY_BLOCK, **options)


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_matching_pennies_is_uniform(concept):
    # Every constraint row of matching pennies has zero regret under the uniform joint, which has maximum entropy.
    eq = _toy()(classic_game("matching_pennies").double().unsqueeze(0), concept=get_concept(concept), eps=0.05)
    assert torch.allclose(eq.sigma[0], torch.full((2, 2), 0.25, dtype=torch.float64), atol=1e-12, rtol=0)
    assert bool(eq.info["converged"].all())


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_prisoners_dilemma_closed_form(concept, eps):
    """Payoffs (C, D): row player 3, 0 / 5, 1 and the transpose. With absolute ``eps`` both CE and CCE ask
    ``2 P(CC) + P(CD) <= eps`` and ``2 P(CC) + P(DC) <= eps``; by symmetry one multiplier ``t``, so the
    ME joint is ``(x^4, x, x, 1) / Z`` with ``x = exp(-t)`` and ``(2 x^4 + x) / Z = eps``: one root."""
    game = torch.tensor([[[3.0, 0.0], [5.0, 1.0]], [[3.0, 5.0], [0.0, 1.0]]], dtype=torch.float64)

    def excess(x):
        return (2 * x**4 + x) / (x**4 + 2 * x + 1) - eps

    lo, hi = 0.0, 1.0  # excess(0) = -eps < 0 < excess(1) = 3/4 - eps
    for _ in range(200):
        lo, hi = (lo, (lo + hi) / 2) if excess((lo + hi) / 2) > 0 else ((lo + hi) / 2, hi)
    x = (lo + hi) / 2
    expected = torch.tensor([[x**4, x], [x, 1.0]], dtype=torch.float64) / (x**4 + 2 * x + 1)
    from did_core.equilibria import Epsilon

    eq = _toy()(game.unsqueeze(0), concept=get_concept(concept), eps=Epsilon(eps, relative=False))
    assert torch.allclose(eq.sigma[0], expected, atol=1e-10, rtol=0)
    assert float(eq.info["violation"][0]) <= 1e-12


def _reference_duals(alpha: np.ndarray, concept: str, n: int, a: int) -> np.ndarray:
    """The block's structured duals in the order of ``reference_rows`` (CE: ``(p, r, d)`` with ``r != d``)."""
    if concept == "cce":
        return alpha.reshape(n * a)
    return np.array([alpha[p, r, d] for p in range(n) for r in range(a) for d in range(a) if r != d])


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 3, 3), (2, 4, 4), (3, 2, 2, 2)])
def test_answers_carry_a_kkt_certificate(concept, shape):
    """``sigma`` and ``alpha`` satisfy the optimality conditions of ``max H(sigma) s.t. D sigma <= eps``, with
    ``D`` and ``eps`` built by plain loops: feasibility, ``alpha >= 0``, complementary slackness and
    ``sigma proportional to exp(-D^T alpha)`` (the program is strictly concave: this is the optimum)."""
    games = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(shape)))
    eq = _toy()(games, concept=get_concept(concept), eps=0.1)
    for b in range(3):
        game = games[b].numpy()
        rows, owners = reference_rows(game, concept)
        d = np.array(rows)
        eps = 0.1 * reference_scale(game)[owners]
        sigma = eq.sigma[b].numpy().reshape(-1)
        alpha = _reference_duals(eq.alpha[b].numpy(), concept, shape[0], shape[1])
        slack = d @ sigma - eps
        assert abs(sigma.sum() - 1) <= 1e-12 and sigma.min() > 0
        assert slack.max() <= 1e-10 and alpha.min() >= 0
        assert np.abs(alpha * slack).max() <= 1e-9
        logits = -d.T @ alpha
        np.testing.assert_allclose(sigma, np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum(),
                                   rtol=1e-9, atol=1e-14)
        assert alpha.max() > 0, "eps 0.1 binds somewhere in these games (else the check is trivial)"


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_padded_and_non_square_games_match_the_clarabel_reference(concept):
    pytest.importorskip("cvxpy", reason="reference_solve needs cvxpy (pip install 'did-core[testing]')")
    from did_core.testing import reference_solve

    sampler = toys.ToySampler(min_actions=1, max_actions=4)
    context = sampler.sample(6, torch.Generator().manual_seed(11))
    games, mask = context["base"].double(), context["mask"]
    eq = _toy()(games, mask, concept=get_concept(concept), eps=0.05)
    for b in range(6):
        n1, n2 = mask[b].sum(dim=1).tolist()
        real = eq.sigma[b, :n1, :n2].numpy()
        assert float(eq.sigma[b].sum()) == pytest.approx(1.0, abs=1e-12) and real.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(real, reference_solve(games[b, :, :n1, :n2].numpy(), concept, 0.05), atol=1e-5)


def test_warm_start_options_and_non_finite_games():
    games = torch.randn(4, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    cold = _toy()(games, concept=get_concept("ce"))
    warm = _toy()(games, concept=get_concept("ce"), alpha0=cold.alpha)
    assert torch.allclose(cold.sigma, warm.sigma, atol=1e-12, rtol=0)
    for bad in ({"tol": 0.0}, {"max_iter": 0}):
        with pytest.raises(ValueError):
            _toy(**bad)
    with pytest.raises(ValueError, match="invalid options for block 'toy_exact'"):
        _toy(bogus=1)
    huge = torch.tensor([[[1e307, -1e307], [3e307, 0]], [[1e307, 2e306], [-1e307, 5e306]]], dtype=torch.float64)
    eq = _toy()(torch.stack([huge, games[0, :, :2, :2]]), concept=get_concept("cce"))
    assert torch.isnan(eq.sigma[0]).all() and not bool(eq.info["converged"][0])  # flagged, never hidden
    assert bool(eq.info["converged"][1]) and math.isclose(float(eq.sigma[1].sum()), 1.0, abs_tol=1e-12)


def test_toys_are_registered_as_a_plugin_and_never_preferred():
    state = registry("blocks")
    assert state.get(toys.TOY_BLOCK).provider == toys.TOY_DISTRIBUTION
    assert registry("tasks").get(toys.TOY_TASK).provider == toys.TOY_DISTRIBUTION
    assert capabilities_of(state.get(toys.TOY_BLOCK).value).exact
    exact = [e.name for e in state if capabilities_of(e.value).exact]
    # The toy is the default exact block only when it is the only one.
    assert (exact_block_for("ce") == toys.TOY_BLOCK) == (exact == [toys.TOY_BLOCK])


def test_toy_task_bonus_at_00_raises_its_probability():
    """The toy objective's direction is right: a bonus on joint action (0, 0) for both players raises P(0, 0)."""
    sampler, objective = toys.ToySampler(), toys.ToyObjective()
    context = sampler.sample(5, torch.Generator().manual_seed(2))
    x0 = objective.baseline_intervention(context)
    bonus = x0.clone()
    bonus[:, :, 0, 0] = 2.0
    block = _toy()
    values = [objective.value(context, x, block(*objective.induce(context, x.double()), concept=get_concept("cce")))
              for x in (x0, bonus)]
    assert torch.all(values[1] < values[0])
    real = objective.intervention_mask(context)
    assert torch.equal(real[:, 0], context["mask"][:, 0, :, None] & context["mask"][:, 1, None, :])
    assert not context["base"][~real].any()
