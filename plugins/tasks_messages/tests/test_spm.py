"""muSPM: the outcomes against a direct simulation of the posting rounds, the paper's facts (0.15 without
messages, nothing lost with them as eps -> 0), the straight-through gradient, instance files and did design."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.plugins import create, exact_block_for, get_concept
from did_core.testing import assert_design_refuses, assert_linear_value
from did_messages.generators import SPMGenerator
from did_messages.instances import load_spm
from did_messages.spm import SPMObjective, SPMSampler, outcomes, paper_instance

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "messages"
CCE = get_concept("cce")


def _exact():
    return create("blocks", exact_block_for("cce"))


def _simulate(v1: float, v2: float, q: float, p1: float, p2: float) -> tuple[float, float, float]:
    """Expected (u_1, u_2, welfare loss) over the order, visiting one agent at a time while the item is unsold."""
    result = [0.0, 0.0, 0.0]
    for first, chance in ((0, q), (1, 1 - q)):
        winner = None
        for agent in (first, 1 - first):
            value, price = (v1, p1) if agent == 0 else (v2, p2)
            if value > price:
                winner = agent
                break
        utility = [0.0, 0.0]
        if winner is not None:
            utility[winner] = (v1 - p1) if winner == 0 else (v2 - p2)
        welfare = 0.0 if winner is None else (v1, v2)[winner]
        for k, u in enumerate((*utility, max(v1, v2) - welfare)):
            result[k] += chance * u
    return tuple(result)


def test_outcomes_match_a_simulation():
    rng = torch.Generator().manual_seed(0)
    context = SPMSampler().sample(3, rng)
    x = torch.rand(3, 2, 2, 3, generator=rng, dtype=torch.float64) * torch.tensor([1.0, 3.0, 1.5])
    u1, u2, loss = outcomes(context, x)
    for b, t1, t2, m1, m2 in itertools.product(range(3), range(2), range(2), range(2), range(2)):
        q, p1, p2 = x[b, m1, m2].tolist()
        want = _simulate(float(context["values"][b, 0, t1]), float(context["values"][b, 1, t2]), q, p1, p2)
        got = (u1[b, t1, t2, m1, m2], u2[b, t1, t2, m1, m2], loss[b, t1, t2, m1, m2])
        assert [float(g) for g in got] == pytest.approx(list(want), abs=1e-6)


def test_without_messages_the_best_mechanism_loses_015():
    """One message: no strategic choice. Over a grid of orders and prices (the thresholds 0, 1/2, 1, 5/2 and
    between) the least expected welfare loss is 0.15, at agent 2 first and price 0."""
    context = paper_instance(messages=1)
    prices = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 3.0]
    x = torch.tensor([[q, p1, p2] for q in (0.0, 1.0) for p1 in prices for p2 in prices], dtype=torch.float64)
    objective = SPMObjective()
    batch = {k: v.expand(len(x), *v.shape[1:]) for k, v in context.items()}
    games, mask = objective.induce(batch, x.view(-1, 1, 1, 3))
    eq = _exact()(games.double(), mask, concept=CCE, eps=Epsilon(0.01, relative=False))
    values = objective.value(batch, x.view(-1, 1, 1, 3), eq)
    assert float(values.min()) == pytest.approx(0.15, abs=1e-6)
    baseline = objective.baseline_intervention(context).double()
    assert float(objective.value(context, baseline, _solve(objective, context, baseline, 0.01))[0]) == pytest.approx(
        0.15, abs=1e-6)


def _solve(objective, context, x, eps):
    games, mask = objective.induce(context, x)
    return _exact()(games.double(), mask, concept=CCE, eps=Epsilon(eps, relative=False))


@pytest.mark.parametrize("eps, most", [(1e-3, 2e-3), (1e-2, 1.1e-2)])
def test_the_papers_mechanism_loses_about_eps(eps, most):
    """Agent 1's message 0: agent 2 first, prices 0; message 1: agent 1 first at 0.6. Truthful reports are strict
    best responses, so the max-entropy eps-B-CCE lies only with probability of order eps: the loss vanishes with eps."""
    context = paper_instance()
    x = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    x[0, 1, :, 0], x[0, 1, :, 1] = 1.0, 0.6
    objective = SPMObjective()
    loss = float(objective.value(context, x, _solve(objective, context, x, eps))[0])
    assert 0 < loss <= most


def test_straight_through_gradient_and_linear_value():
    context = paper_instance()
    x = torch.tensor([[[[0.2, 0.45, 0.9], [0.7, 0.55, 0.2]], [[0.5, 0.6, 0.95], [0.9, 2.4, 0.05]]]],
                     dtype=torch.float64, requires_grad=True)
    objective = SPMObjective()
    eq = _solve(objective, context, x, 0.01)
    value = objective.value(context, x, eq)
    exact = objective.value(context, x.detach(), _solve(objective, context, x.detach(), 0.01))
    assert float(value.detach()) == pytest.approx(float(exact), abs=1e-9)  # the temperature only shapes the gradient
    value.sum().backward()
    assert x.grad is not None and bool(x.grad[..., 1:].abs().sum() > 0)
    assert_linear_value(objective, context, x.detach(), _exact(), CCE, eps=Epsilon(0.01, relative=False))


def test_generator_shape_and_ranges():
    sampler = SPMSampler()
    context = sampler.sample(4, torch.Generator().manual_seed(3))
    x = SPMGenerator(sampler)(context)
    assert x.shape == (4, 2, 2, 3) and bool(((0 <= x[..., 0]) & (x[..., 0] <= 1)).all()) and bool((x[..., 1:] >= 0).all())


def test_instance_file_and_design_in_words(capsys):
    from did_core.cli import main

    context = load_spm(EXAMPLES / "mu_spm_paper.json")
    assert torch.allclose(context["values"], paper_instance()["values"])
    assert main(["design", "mu_spm", str(EXAMPLES / "mu_spm_paper.json"), "--optimise", "--steps", "3",
                 "--absolute", "--eps", "0.01"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"after messages \(agent 1: 1, agent 2: 0\): visit agent \d first", out)
    assert "agent 1 with value 2.5 (prior 0.200): message 0" in out


@pytest.mark.parametrize("content, problem", [
    ({"values": [[[0.5, 1.0]]], "messages": 2}, "two lists"),
    ({"values": [[[0.5, 0.8], [2.5, 0.3]], [[0, 1]]], "messages": 2}, "sum to 1"),
    ({"values": [[[float("nan"), 1.0]], [[0, 1]]], "messages": 2}, "values[0][0][0]"),
    ({"values": [[[0.5, 1.0]], [[0, 1]]], "messages": 4}, "messages"),
    ({"values": [[[0.5, 1.0]], [[0, 1]]] , "messages": 2, "agents": ["a", "a"]}, "duplicate"),
    ({"values": [[[0.5, 0.25]] * 4, [[0, 1]]], "messages": 2}, "pairs"),
])
def test_malformed_spm_files_are_refused(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    text = json.dumps(content)
    assert_design_refuses("mu_spm", path, text)
    with pytest.raises(ValueError, match=re.escape(problem)):
        load_spm(path)
