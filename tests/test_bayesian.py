"""Bayesian games (did_core.bayesian): the agent-normal form against the B-CCE / B-CE definitions written out by
brute force, the eps-ME selection against cvxpy on those definitions, games with a known answer, padding, and
did solve on a Bayesian game file."""

from __future__ import annotations

import itertools
import json

import cvxpy as cp
import numpy as np
import pytest
import torch

from did_core.bayesian import BayesianGames
from did_core.equilibria import Epsilon
from did_core.plugins import create, exact_block_for, get_concept



def _block(concept: str):
    try:
        return create("blocks", exact_block_for(concept))
    except Exception as exc:  # noqa: BLE001 - no exact block installed (DID_LOAD_PLUGINS='')
        pytest.skip(f"no exact block: {exc}")


def _random_game(seed: int, types: tuple[int, ...], actions: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Payoffs ``u[i][t..][a..]`` (numpy, unpadded) and one prior per player."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 1, (len(types), *types, *actions))
    priors = [rng.dirichlet(np.ones(t)) for t in types]
    return u, priors


def _padded(u: np.ndarray, priors: list[np.ndarray], t_max: int, a_max: int) -> BayesianGames:
    """The game as a padded batch of one."""
    n = len(priors)
    types, actions = u.shape[1:1 + n], u.shape[1 + n:]
    payoffs = torch.zeros(1, n, *[t_max] * n, *[a_max] * n, dtype=torch.float64)
    payoffs[(0, slice(None), *[slice(0, t) for t in types], *[slice(0, a) for a in actions])] = torch.from_numpy(u)
    prior = torch.zeros(1, n, t_max, dtype=torch.float64)
    mask = torch.zeros(1, n, a_max, dtype=torch.bool)
    for i, p in enumerate(priors):
        prior[0, i, : len(p)] = torch.from_numpy(p)
        mask[0, i, : actions[i]] = True
    return BayesianGames(payoffs, prior, mask)


def _profiles(u: np.ndarray, n: int) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Agents ``(i, t_i)``, every pure ANF profile (one action per agent, agents in order) and every type profile."""
    types, actions = u.shape[1:1 + n], u.shape[1 + n:]
    agents = [(i, t) for i in range(n) for t in range(types[i])]
    pure = list(itertools.product(*[range(actions[i]) for i, _ in agents]))
    return agents, pure, list(itertools.product(*[range(t) for t in types]))


def _interim_gain_rows(u: np.ndarray, priors: list[np.ndarray], concept: str) -> np.ndarray:
    """The B-CCE (or B-CE) gain rows straight from the definition: for each player ``i``, type ``t_i``, (told
    action ``r`` for B-CE and) deviation ``d``, the gain at every pure profile ``s`` of the agents, in expectation
    over the other players' types: ``sum_{t_-i} P(t_-i) (u_i(d, s_-i(t_-i); t) - u_i(s(t); t))``."""
    n = len(priors)
    actions = u.shape[1 + n:]
    agents, pure, type_profiles = _profiles(u, n)
    rows = []
    for i, ti in itertools.product(range(n), range(max(u.shape[1:1 + n]))):
        if ti >= u.shape[1 + i]:
            continue
        agent = agents.index((i, ti))
        told = range(actions[i]) if concept == "ce" else [None]
        for r, d in itertools.product(told, range(actions[i])):
            row = np.zeros(len(pure))
            for k, s in enumerate(pure):
                if r is not None and s[agent] != r:
                    continue
                for t in type_profiles:
                    if t[i] != ti:
                        continue
                    weight = np.prod([priors[j][t[j]] for j in range(n) if j != i])
                    a = tuple(s[agents.index((j, t[j]))] for j in range(n))
                    dev = a[:i] + (d,) + a[i + 1:]
                    row[k] += weight * (u[(i, *t, *dev)] - u[(i, *t, *a)])
            rows.append(row)
    return np.array(rows)


def _me_by_cvxpy(rows: np.ndarray, eps: float) -> np.ndarray:
    """The maximum-entropy joint over pure profiles subject to ``rows @ sigma <= eps`` (ECOS)."""
    sigma = cp.Variable(rows.shape[1])
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), [rows @ sigma <= eps, cp.sum(sigma) == 1, sigma >= 0])
    problem.solve(solver=cp.ECOS, abstol=1e-10, reltol=1e-10, feastol=1e-10)
    return np.asarray(sigma.value)


@pytest.mark.parametrize("concept", ["cce", "ce"])
@pytest.mark.parametrize("seed, types, actions", [(0, (2, 2), (2, 2)), (1, (3, 2), (2, 3)), (2, (3,), (3,))])
def test_eps_me_b_equilibrium_matches_cvxpy_on_the_definition(concept, seed, types, actions):
    u, priors = _random_game(seed, types, actions)
    eps = 0.02
    games = _padded(u, priors, max(types), max(actions))
    anf, mask = games.agent_normal_form()
    eq = _block(concept)(anf, mask, concept=get_concept(concept), eps=Epsilon(eps, relative=False))
    agents, pure, _ = _profiles(u, len(types))
    sigma = eq.sigma[0].detach().numpy()
    ours = np.array([sigma[tuple(s[agents.index((i, t))] if (i, t) in agents else 0
                                 for i in range(len(types)) for t in range(max(types)))] for s in pure])
    assert abs(ours.sum() - 1) < 1e-9  # no mass on padded agents' padded actions
    rows = _interim_gain_rows(u, priors, concept)
    assert (rows @ ours).max() <= eps + 1e-7  # an eps-B-CCE (B-CE) by the definition
    assert np.abs(ours - _me_by_cvxpy(rows, eps)).max() < 2e-4  # and the maximum-entropy one


def test_padded_types_and_actions_change_nothing():
    u, priors = _random_game(3, (2, 2), (2, 2))
    tight = _padded(u, priors, 2, 2)
    loose = _padded(u, priors, 3, 3)
    block = _block("cce")
    concept, eps = get_concept("cce"), Epsilon(0.01, relative=False)
    a = tight.strategies(block(*tight.agent_normal_form(), concept=concept, eps=eps).sigma)
    b = loose.strategies(block(*loose.agent_normal_form(), concept=concept, eps=eps).sigma)
    assert torch.allclose(b[:, :, :2, :2], a, atol=1e-6)
    assert float(b[:, :, :2, 2:].abs().max()) < 1e-9 and torch.allclose(b[:, :, 2, 0], torch.ones(1, 2).double())


def test_expectation_is_the_ex_ante_value_of_type_strategies():
    """For a product joint (each type mixing on its own) the ex-ante value is a sum over type and action profiles."""
    u, priors = _random_game(4, (2, 3), (2, 2))
    games = _padded(u, priors, 3, 2)
    rng = np.random.default_rng(5)
    strategies = {(i, t): rng.dirichlet(np.ones(2)) for i in range(2) for t in range(3)}
    sigma = torch.ones([2] * 6, dtype=torch.float64)
    for k, (i, t) in enumerate(strategies):
        shape = [1] * 6
        shape[k] = 2
        sigma = sigma * torch.from_numpy(strategies[(i, t)]).reshape(shape)
    value = float((games.expectation(games.payoffs[:, 0]) * sigma.unsqueeze(0)).sum())
    expected = sum(priors[0][t1] * priors[1][t2] * strategies[(0, t1)][a1] * strategies[(1, t2)][a2]
                   * u[0, t1, t2, a1, a2]
                   for t1 in range(2) for t2 in range(3) for a1 in range(2) for a2 in range(2))
    assert value == pytest.approx(expected, abs=1e-12)
    assert torch.allclose(games.strategies(sigma.unsqueeze(0))[0, 1, 2], torch.from_numpy(strategies[(1, 2)]))


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_message_allocation_known_answer(concept):
    """One follower, 3 items (uniform), messages 1 and 2 give items 1 and 2: the types that want them send their
    message with probability 1 - eps (the max-entropy eps-best response to a gain of 1), the third type mixes
    evenly; the leader's value is (1 - eps) 2/3, the paper's 2/3 as eps -> 0."""
    payoffs = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]], dtype=torch.float64)
    games = BayesianGames(payoffs, torch.full((1, 1, 3), 1 / 3, dtype=torch.float64))
    eps = 0.01
    eq = _block(concept)(*games.agent_normal_form(), concept=get_concept(concept), eps=Epsilon(eps, relative=False))
    strategies = games.strategies(eq.sigma)[0, 0]
    want = torch.tensor([[1 - eps, eps], [eps, 1 - eps], [0.5, 0.5]], dtype=torch.float64)
    assert torch.allclose(strategies, want, atol=1e-6)  # B-CE: told the wrong message, switching gains 1 * P(told)
    value = float((games.expectation(payoffs[:, 0]) * eq.sigma).sum())
    assert value == pytest.approx((1 - eps) * 2 / 3, abs=1e-6)


def test_no_regret_learners_are_one_per_type():
    """The no_regret block on the agent-normal form runs one learner per (player, type) on its interim payoffs:
    the seed's multiplicative-weights followers in expectation over the types; their average play is an
    approximate B-CCE (its gap by the definition is small)."""
    try:
        block = create("blocks", "no_regret", rounds=2000)
    except Exception as exc:  # noqa: BLE001 - the plugin is not installed
        pytest.skip(f"no no_regret block: {exc}")
    u, priors = _random_game(6, (2, 2), (2, 2))
    games = _padded(u, priors, 2, 2)
    eq = block(*games.agent_normal_form(), concept=get_concept("cce"), eps=0.01)
    agents, pure, _ = _profiles(u, 2)
    sigma = eq.sigma[0].detach().numpy()
    flat = np.array([sigma[s] for s in pure])
    assert (_interim_gain_rows(u, priors, "cce") @ flat).max() < 0.01


def test_did_solve_reads_a_bayesian_game(tmp_path, capsys):
    from did_core.cli import main

    _block("cce")
    path = tmp_path / "allocation.json"
    path.write_text(json.dumps({"players": ["follower"], "types": [["1", "2", "3"]], "prior": [[0.5, 0.3, 0.2]],
                                "actions": [["a", "b"]], "payoffs": [[[1, 0], [0, 1], [0, 0]]]}))
    assert main(["solve", str(path), "--absolute", "--eps", "0.01", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bayesian"] and report["agents"] == ["follower: 1", "follower: 2", "follower: 3"]
    assert np.allclose(report["strategies"][0], [[0.99, 0.01], [0.01, 0.99], [0.5, 0.5]], atol=1e-6)
    assert report["violation"] <= 1e-9 and report["eps"] == [0.01] * 3
    assert main(["solve", str(path), "--absolute", "--eps", "0.01"]) == 0
    assert "follower, type 3 (prior 0.2): a: 0.5000  b: 0.5000" in capsys.readouterr().out
