"""The affine maximizer (did_core.affine_maximizer) and the settings against independent truth: auctions
worked by hand, the plain-Python reference (tests/reference.py) profile by profile, strategyproofness under
random misreports, and the published VCG figures."""

from __future__ import annotations

import pytest
import torch

from did_core.affine_maximizer import AffineMaximizer, one_round_mdp, run_affine_maximizer, vcg
from did_dynamic.evaluation import evaluate, objective_of
from did_dynamic.mechanism_file import mechanism_json
from did_dynamic.evaluation import Measured
from did_dynamic.settings import make_setting, makespan

import dynamic_reference as reference

DOUBLE = torch.float64


def test_one_round_vcg_is_the_second_price_auction():
    # outcomes: nobody, bidder 1, bidder 2 get the item
    values = torch.tensor([[0.7, 0.4], [0.2, 0.9]], dtype=DOUBLE)
    rewards = torch.zeros(2, 2, 1, 3, dtype=DOUBLE)
    rewards[:, 0, 0, 1], rewards[:, 1, 0, 2] = values[:, 0], values[:, 1]
    out = run_affine_maximizer(one_round_mdp(3), rewards, torch.zeros_like(rewards), torch.ones(2, dtype=DOUBLE),
                               torch.zeros(1, 3, dtype=DOUBLE))
    assert torch.allclose(out.payments, torch.tensor([[0.4, 0.0], [0.0, 0.2]], dtype=DOUBLE))
    # a boost on "nobody" of 0.5 is a reserve price: 0.7 against max(0.4, 0.5) pays 0.5; 0.9 pays 0.5
    out = run_affine_maximizer(one_round_mdp(3), rewards, torch.zeros_like(rewards), torch.ones(2, dtype=DOUBLE),
                               torch.tensor([[0.5, 0.0, 0.0]], dtype=DOUBLE))
    assert torch.allclose(out.revenue, torch.tensor([0.5, 0.5], dtype=DOUBLE))


def random_mechanism(setting, seed: int) -> AffineMaximizer:
    g = torch.Generator().manual_seed(seed)
    weights = 0.5 + torch.rand(setting.n, generator=g, dtype=DOUBLE)
    boosts = 0.3 * torch.randn(setting.mdp.num_states, setting.mdp.num_actions, generator=g, dtype=DOUBLE)
    return AffineMaximizer(weights, boosts)


@pytest.mark.parametrize("cell", [("sales-asym", 3, 2), ("sales-sym", 2, 3), ("makespan-asym", 2, 4),
                                  ("makespan-sym", 3, 3)])
def test_tensor_mechanism_matches_the_plain_python_reference(cell):
    setting = make_setting(*cell)
    mechanism = random_mechanism(setting, 1)
    as_file = mechanism_json(setting, mechanism, Measured(0.0, 0.0, 1))
    types = setting.sample_types(30, torch.Generator().manual_seed(2))
    ours = objective_of(setting, mechanism, types)
    theirs = [reference.outcome(as_file, t.tolist()) for t in types]
    assert torch.allclose(ours, torch.tensor(theirs, dtype=DOUBLE), atol=1e-9)


@pytest.mark.parametrize("cell", [("sales-sym", 3, 2), ("makespan-asym", 2, 3)])
def test_no_misreport_pays(cell):
    setting = make_setting(*cell)
    mechanism = random_mechanism(setting, 3)
    g = torch.Generator().manual_seed(4)
    truth = setting.sample_types(200, g)
    lie = setting.sample_types(200, g)

    def utility(reports, agent):
        rewards = setting.rewards(reports)
        out = run_affine_maximizer(setting.mdp, rewards, setting.counterfactual_rewards(reports),
                                   mechanism.weights, mechanism.boosts)
        true_rewards = setting.rewards(truth)[:, agent]
        return (out.occupancy * true_rewards).sum((-2, -1)) - out.payments[:, agent]

    for agent in range(setting.n):
        reports = truth.clone()
        reports[:, agent] = lie[:, agent]
        assert bool((utility(reports, agent) <= utility(truth, agent) + 1e-9).all())


@pytest.mark.parametrize("cell,published", [(("sales-sym", 3, 2), 0.4999), (("sales-asym", 4, 2), 0.3089),
                                            (("makespan-sym", 2, 4), 1.0336), (("makespan-asym", 2, 4), 1.8312)])
def test_vcg_reproduces_the_published_figure(cell, published):
    setting = make_setting(*cell)
    measured = evaluate(setting, vcg(setting.n, setting.mdp.num_states, setting.mdp.num_actions), 20_000, 0)
    assert abs(measured.mean - published) < 0.01 + 2 * measured.stderr


def test_makespan_as_published():
    types = torch.tensor([[[2.0, 1.0, 0.5], [1.0, 1.0, 3.0]]], dtype=DOUBLE)
    schedules = torch.tensor([[0, 0, 1], [1, 1, 1], [0, 1, 0]])
    # [0,0,1]: rem0 = 2; one unit done, + 1: rem0 = 2; one unit done (1), rem1 = 3: makespan 3.
    # [1,1,1]: rem1 = 1; 0 + 1 = 1; 0 + 3 = 3: makespan 3.
    # [0,1,0]: rem0 = 2; 1 and rem1 = 1; both done: rem0 = 0 + 0.5, rem1 = 0: makespan 0.5.
    assert makespan(types, schedules).tolist() == [[3.0, 3.0, 0.5]]
    credit = torch.tensor([[[0.5, 0.0, 1.0]]], dtype=DOUBLE)  # 0.5 - 1 = -0.5 stays as credit: -0.5 + 1 = 0.5
    assert makespan(credit, torch.tensor([[0, 0, 0]])).tolist() == [[0.5]]


def test_state_enumeration_is_the_published_one():
    sales = make_setting("sales-sym", 2, 3)
    assert sales.mdp.labels[:5] == ((0, -1, -1, -1), (1, 0, -1, -1), (1, 1, -1, -1), (1, 2, -1, -1), (2, 0, 0, -1))
    assert sales.mdp.num_states == 1 + 3 + 9
    scheduling = make_setting("makespan-sym", 3, 4)
    assert scheduling.mdp.labels[:3] == ((1, -1, -1, -1, -1), (2, 1, -1, -1, -1), (2, 2, -1, -1, -1))
    assert scheduling.mdp.num_states == 1 + 3 + 9 + 27
