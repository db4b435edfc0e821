"""A concept without a per-player dual layout on games that are not square (issue 25, item 1).

Its duals are flat, ``K`` rows per game, and ``K`` depends on every player's action count, not on ``N`` and
``A_max`` alone: the CCE rows ``(p, d)`` number ``sum_p A_p`` and the cap rows ``J = prod_p A_p``. Every exact block
must solve it on a 3x2, a 2x3 and a three-player game, and agree with an independent solver: the rows written from
the definitions with plain loops (``did_core.testing.reference_rows``) and the program solved by cvxpy's Clarabel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from did_core.equilibria import Epsilon, constraints
from did_core.games import full_mask
from did_core.plugins import create, registry
from did_core.testing import CappedCCE, reference_rows, reference_scale

cp = pytest.importorskip("cvxpy", reason="the independent reference solves with cvxpy (did-core[testing])")

EXACT_BLOCKS = ["exact_newton", "exact_cvx", "toy_exact"]
EPS = 0.05
NON_SQUARE = Path(__file__).resolve().parents[1] / "examples" / "games" / "non_square.npy"


class CapCCE(CappedCCE):
    """:class:`did_core.testing.CappedCCE` under this module's own name: the CCE rows, then ``sigma(a) <= cap``
    (tolerance 0); no layout."""

    name = "test_cap_cce"


def reference(game: np.ndarray, cap: float, eps: float = EPS) -> np.ndarray:
    """The eps-ME joint of ``CapCCE(cap)`` for one game ``[N, A_1..A_N]`` (relative eps), independently."""
    rows, owners = reference_rows(game, "cce")
    tolerance = eps * reference_scale(game)
    sigma = cp.Variable(int(np.prod(game.shape[1:])))
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))),
                         [np.array(rows) @ sigma <= np.array([tolerance[o] for o in owners]), sigma <= cap,
                          cp.sum(sigma) == 1])
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL, f"the test game has no capped CCE: {problem.status}"
    return np.clip(sigma.value, 0, None).reshape(game.shape[1:])


def _random(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    return torch.stack([torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
                        for s in seeds])


def _games() -> list[tuple[str, torch.Tensor, float]]:
    """(label, games [B, N, A_1..A_N], cap): the repository's non-square example (its CCE puts 0.49 on a joint
    action, 0.46 is the least cap any CCE meets), random 2x3 games (the cap binds in the second, not in the first)
    and 2x2x3 games (it binds in the first and the last); seeds in which every game has a capped CCE."""
    return [
        ("non_square.npy 3x2", torch.from_numpy(np.load(NON_SQUARE)).double().unsqueeze(0), 0.475),
        ("2x3", _random((2, 2, 3), [0, 2]), 0.32),
        ("2x2x3", _random((3, 2, 2, 3), [0, 1, 7]), 0.3),
    ]


GAMES = _games()


def _block(name: str):
    if name not in registry("blocks"):
        pytest.skip(f"block {name!r} is not installed")
    return create("blocks", name)


@pytest.mark.parametrize("label, games, cap", GAMES, ids=[g[0] for g in GAMES])
def test_flat_duals_have_the_rows_of_the_games_themselves(label, games, cap):
    concept = CapCCE(cap=cap)
    sizes = games.shape[2:]
    rows = len(sizes) * max(sizes) + int(np.prod(sizes))  # CCE rows (p, d), d padded to A_max; a cap row per joint
    assert concept.dual_shape(sizes) == (rows,)
    assert constraints(games, full_mask(games), concept, EPS).dual_shape == (rows,)
    mask = full_mask(games)
    assert concept.dual_mask(mask, sizes).shape == (len(games), rows)
    assert torch.equal(concept.dual_mask(mask, sizes), concept.operator(games, mask).real)


@pytest.mark.parametrize("block", EXACT_BLOCKS)
@pytest.mark.parametrize("label, games, cap", GAMES, ids=[g[0] for g in GAMES])
def test_exact_blocks_solve_a_concept_without_layout_on_non_square_games(block, label, games, cap):
    eq = _block(block)(games, concept=CapCCE(cap=cap), eps=EPS)
    assert eq.sigma.shape == games.shape[:1] + games.shape[2:] and eq.concept == CapCCE(cap=cap)
    assert eq.alpha.shape == (len(games), *CapCCE(cap=cap).dual_shape(games.shape[2:]))
    for b in range(len(games)):
        np.testing.assert_allclose(eq.sigma[b].numpy(), reference(games[b].numpy(), cap), atol=2e-6)
    assert float(eq.info["violation"].max()) <= 1e-7


@pytest.mark.parametrize("block", EXACT_BLOCKS)
def test_the_implicit_gradient_of_a_concept_without_layout_on_a_non_square_game(block):
    """Central differences agree with the implicit gradient through the flat duals (the second 2x3 game: the cap
    binds in it, and no row is nearly active)."""
    solve = _block(block)
    games = GAMES[1][1][1:].clone().requires_grad_(True)
    eq = solve(games, concept=CapCCE(cap=0.32), eps=EPS)
    assert float(eq.sigma.detach().max()) == pytest.approx(0.32, abs=1e-7)  # the cap binds
    assert torch.autograd.gradcheck(lambda g: solve(g, concept=CapCCE(cap=0.32), eps=EPS).sigma, (games,),
                                    eps=1e-4, atol=1e-5, rtol=1e-3)


def test_padded_batches_of_a_concept_without_layout():
    """Mixed sizes in one batch: a 2x3 game padded to 3x3 beside a 3x3 game; the padded game's answer is its own."""
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    mask = full_mask(games)
    mask[0, 0, 2] = False
    games[0, :, 2, :] = 0.0
    for name in ("exact_newton", "exact_cvx"):
        eq = _block(name)(games, mask, concept=CapCCE(cap=0.3), eps=EPS)
        np.testing.assert_allclose(eq.sigma[0, :2].numpy(), reference(games[0, :, :2].numpy(), 0.3), atol=2e-6)
        np.testing.assert_allclose(eq.sigma[1].numpy(), reference(games[1].numpy(), 0.3), atol=2e-6)
        assert float(eq.sigma[0, 2].abs().max()) == 0.0
        cons = constraints(games, mask, CapCCE(cap=0.3), Epsilon(EPS))
        assert float(((cons.operator.regrets(eq.sigma.reshape(2, -1)) - cons.eps)[cons.rows]).max()) <= 1e-7
