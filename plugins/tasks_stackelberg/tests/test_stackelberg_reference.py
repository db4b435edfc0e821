"""The exact references against independent truth: the multiple-LP strong Stackelberg value, the
max-entropy eps-best response and the 1-D search behind the game-2 targets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.plugins import create, get_concept
from did_stackelberg.reference import edge_search, edge_values, me_best_response, strong_stackelberg

LEADER = np.array([[20.0, 0, 0], [30, 10, 0], [0, 0, 5]])
FOLLOWER = np.array([[15.0, 0, 0], [0, 5, 0], [0, 0, 10]])


def test_game2_strong_stackelberg_value_is_27_5():
    sse = strong_stackelberg(LEADER, FOLLOWER[None])
    assert sse.value == pytest.approx(27.5, abs=1e-9)
    assert np.allclose(sse.strategy, [0.25, 0.75, 0.0], atol=1e-9) and sse.response == (0,)


def test_game2_commitments_from_the_issue():
    """Best pure row 20; A with 0.25 + d and B with 0.75 - d keeps the follower on A and gives 27.5 - 10 d."""
    pure = max(LEADER[row, int(np.argmax(FOLLOWER[row]))] for row in range(3))
    assert pure == 20
    for d in (0.01, 0.1, 0.3):
        x = np.array([0.25 + d, 0.75 - d, 0.0])
        assert int(np.argmax(x @ FOLLOWER)) == 0
        assert float(x @ LEADER[:, 0]) == pytest.approx(27.5 - 10 * d)


def _grid_sse(leader: np.ndarray, follower: np.ndarray, points: int = 200001) -> float:
    """A 2 x K game: the leader's value over a grid of p = P(row 0), follower ties broken for the leader."""
    p = np.linspace(0, 1, points)[:, None]
    u = p * follower[0] + (1 - p) * follower[1]
    v = p * leader[0] + (1 - p) * leader[1]
    best = u >= u.max(axis=1, keepdims=True) - 1e-12
    return float(np.where(best, v, -np.inf).max())


@pytest.mark.parametrize("columns", [2, 3])
def test_sse_equals_a_fine_grid_on_2xk_games(columns):
    rng = np.random.default_rng(columns)
    for _ in range(20):
        leader, follower = rng.random((2, columns)), rng.random((2, columns))
        sse = strong_stackelberg(leader, follower[None]).value
        grid = _grid_sse(leader, follower)
        # the grid's point nearest the optimum is within one step (payoffs in [0, 1]: slope <= 1)
        assert grid <= sse + 1e-9 and grid >= sse - 2e-5


def _vertex_sse(leader: np.ndarray, follower: np.ndarray) -> float:
    """Brute force: for every follower action, every vertex of {x in simplex: that action is a best response}.

    A vertex makes ``L - 1`` of the ``(A_F - 1) + L`` inequalities tight (with sum x = 1):
    solve every such square system and keep the feasible solutions.
    """
    n_l, n_f = leader.shape
    best = -np.inf
    for j in range(n_f):
        rows = [follower[:, k] - follower[:, j] for k in range(n_f) if k != j] + list(np.eye(n_l))
        for tight in itertools.combinations(range(len(rows)), n_l - 1):
            a = np.vstack([np.ones(n_l)] + [rows[t] for t in tight])
            if abs(np.linalg.det(a)) < 1e-12:
                continue
            x = np.linalg.solve(a, np.eye(n_l)[0])
            if (x >= -1e-9).all() and all(r @ x <= 1e-9 for r in rows[: n_f - 1]):
                best = max(best, float(x @ leader[:, j]))
    return best


@pytest.mark.parametrize("size", [(3, 3), (4, 3), (3, 5), (4, 4)])
def test_sse_equals_vertex_enumeration_on_random_games(size):
    rng = np.random.default_rng(sum(size))
    for _ in range(10):
        leader, follower = rng.random(size), rng.random(size)
        assert strong_stackelberg(leader, follower[None]).value == pytest.approx(_vertex_sse(leader, follower),
                                                                                abs=1e-7)


def test_sse_with_two_followers_is_a_pure_equilibrium_lp():
    """Two followers: the answer commits to x under which the profile is a pure equilibrium, and no LP beats it."""
    rng = np.random.default_rng(7)
    leader, followers = rng.random((3, 2, 2)), rng.random((2, 3, 2, 2))
    sse = strong_stackelberg(leader, followers)
    x, (a, b) = sse.strategy, sse.response
    induced = np.einsum("l,ilab->iab", x, followers)
    assert induced[0, a, b] >= induced[0, 1 - a, b] - 1e-9 and induced[1, a, b] >= induced[1, a, 1 - b] - 1e-9
    assert sse.value == pytest.approx(float(x @ leader[:, a, b]))


def test_me_best_response_matches_the_exact_block():
    """The bisection's softmax is the eps-ME CCE of the one-player game (an exact block's answer)."""
    u = torch.randn(16, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ours = me_best_response(u, 0.05)
    block = create("blocks", "exact_newton")
    eq = block(u.unsqueeze(1), concept=get_concept("cce"), eps=Epsilon(0.05, relative=False))
    assert torch.allclose(ours, eq.sigma, atol=1e-7)
    regret = u.amax(dim=1) - (ours * u).sum(dim=1)
    assert float(regret.max()) <= 0.05 + 1e-9


@pytest.mark.parametrize("eps, value, p", [(0.003, 27.1536, 0.2673), (0.03, 26.4046, 0.3048)])
def test_game2_edge_peak(eps, value, p):
    """The best commitment on the A/B edge against a max-entropy eps-best response: ~27.15 at 0.003, ~26.4 at 0.03."""
    best_p, best_v = edge_search(LEADER, FOLLOWER, 0, 1, eps, points=501, rounds=3)
    assert best_v == pytest.approx(value, abs=1e-3) and best_p == pytest.approx(p, abs=1e-3)
    # no point of a plain fine grid beats the search
    grid = edge_values(LEADER, FOLLOWER, 0, 1, torch.linspace(0, 1, 4001, dtype=torch.float64), eps)
    assert float(grid.max()) <= best_v + 1e-9 and float(grid.max()) >= best_v - 0.02
    # below the SSE: an eps-best-responding follower costs the leader something
    assert best_v < 27.5
