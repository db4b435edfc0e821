"""Message allocation: the optimum against brute force over allocation rules, the eps-ME value of the optimal rule
in closed form, the value's linear form, the generator's equivariance, instance files and did design."""

from __future__ import annotations

import itertools
import re
import json
from pathlib import Path

import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.plugins import create, exact_block_for, get_concept
from did_core.testing import assert_design_refuses, assert_linear_value
from did_messages.allocation import AllocationObjective, AllocationSampler, optimum
from did_messages.generators import AllocationGenerator
from did_messages.instances import load_allocation

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "messages"
CCE = get_concept("cce")


def _exact():
    return create("blocks", exact_block_for("cce"))


def _context(prior: list[float], m: int) -> dict[str, torch.Tensor]:
    p = torch.tensor([prior], dtype=torch.float64)
    messages = torch.ones(1, m, dtype=torch.bool)
    return {"prior": p, "items": torch.ones_like(p, dtype=torch.bool), "messages": messages,
            "optimum": optimum(p, messages)}


@pytest.mark.parametrize("seed", range(4))
def test_optimum_is_the_best_deterministic_rule_against_a_best_responding_follower(seed):
    """Brute force: every map from messages to items; each type sends its best message (it gets 1 iff some message
    gives its item), so a rule's value is the prior mass of the items it gives."""
    sampler = AllocationSampler(min_items=2, max_items=5, max_messages=3)
    context = sampler.sample(8, torch.Generator().manual_seed(seed))
    for b in range(8):
        k, m = int(context["items"][b].sum()), int(context["messages"][b].sum())
        q = context["prior"][b, :k].tolist()
        best = max(sum(q[i] for i in set(rule)) for rule in itertools.product(range(k), repeat=m))
        assert float(context["optimum"][b]) == pytest.approx(best, abs=1e-6)


def test_paper_optima():
    for m, want in ((1, 1 / 3), (2, 2 / 3), (3, 1.0)):
        assert float(_context([1 / 3] * 3, m)["optimum"][0]) == pytest.approx(want)


@pytest.mark.parametrize("prior, m", [([0.5, 0.3, 0.2], 2), ([0.1, 0.2, 0.3, 0.4], 3), ([0.6, 0.4], 1)])
def test_the_optimal_rule_under_the_exact_block_loses_eps_of_each_served_type(prior, m):
    """Giving the m most likely items one message each: a served type gains 1 from its message over any other, so
    its max-entropy eps-best response sends it with probability 1 - eps: the value is (1 - eps) times the optimum
    (with one message there is no choice: the optimum itself)."""
    context = _context(prior, m)
    order = sorted(range(len(prior)), key=lambda i: -prior[i])
    x = torch.zeros(1, m, len(prior), dtype=torch.float64)
    for mu in range(m):
        x[0, mu, order[mu]] = 1.0
    objective, eps = AllocationObjective(), 0.01
    games, mask = objective.induce(context, x)
    eq = _exact()(games, mask, concept=CCE, eps=Epsilon(eps, relative=False))
    want = float(context["optimum"][0]) * (1 if m == 1 else 1 - eps)
    assert float(objective.value(context, x, eq)[0]) == pytest.approx(want, abs=1e-6)


def test_linear_value_and_baseline():
    context = AllocationSampler(max_items=4).sample(3, torch.Generator().manual_seed(1))
    objective = AllocationObjective()
    x = torch.softmax(torch.randn(3, context["messages"].shape[1], 4, dtype=torch.float64), dim=2)
    assert_linear_value(objective, context, x, _exact(), CCE, eps=Epsilon(0.01, relative=False))
    base = objective.baseline_intervention(context)
    games, mask = objective.induce(context, base)
    eq = _exact()(games.double(), mask, concept=CCE, eps=0.05)
    assert torch.allclose(objective.value(context, base, eq), 1 / context["items"].sum(1).double(), atol=1e-6)


def test_generator_relabels_with_the_items():
    sampler = AllocationSampler(min_items=4, max_items=4, min_messages=2, max_messages=2)
    context = sampler.sample(5, torch.Generator().manual_seed(2))
    generator = AllocationGenerator(sampler)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = {**context, "prior": context["prior"][:, perm], "items": context["items"][:, perm]}
    x = generator(context)
    assert x.shape == (5, 2, 4) and torch.allclose(x.sum(2), torch.ones(5, 2))
    assert torch.allclose(generator(permuted), x[:, :, perm], atol=1e-6)


def test_instance_file_and_design(tmp_path, capsys):
    from did_core.cli import main

    context = load_allocation(EXAMPLES / "allocation_k3_m2.json")
    assert float(context["optimum"][0]) == pytest.approx(2 / 3)
    path = tmp_path / "named.json"
    path.write_text(json.dumps({"items": 3, "messages": 2, "prior": [0.5, 0.3, 0.2],
                                "item_names": ["red", "green", "blue"]}))
    assert main(["design", "message_allocation", str(path), "--optimise", "--steps", "30", "--lr", "0.2",
                 "--absolute", "--eps", "0.01", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimum"] == pytest.approx(0.8) and report["items"] == ["red", "green", "blue"]
    value = report["blocks"][exact_block_for("cce")]["value_with"]
    assert 0.6 < value <= 0.8 * 0.99 + 1e-6
    assert main(["design", "message_allocation", str(path), "--optimise", "--steps", "2", "--absolute",
                 "--eps", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "message 1: " in out and "wants red (prior 0.500): message 1" in out


@pytest.mark.parametrize("content, problem", [
    ({"items": 3, "messages": 2}, "missing"),
    ({"items": 3, "messages": 2, "prior": [0.5, 0.5]}, "prior"),
    ({"items": 3, "messages": 2, "prior": [0.5, 0.6, -0.1]}, "prior[2]"),
    ({"items": 3, "messages": 2, "prior": [0.5, 0.3, 0.3]}, "sum to 1"),
    ({"items": 7, "messages": 2, "prior": [1 / 7] * 7}, "items"),
    ({"items": 4, "messages": 4, "prior": [0.25] * 4}, "messages"),
    ({"items": 3, "messages": True, "prior": [0.2, 0.3, 0.5]}, "messages"),
    ({"items": 3, "messages": 2, "prior": [0.2, 0.3, 0.5], "extra": 1}, "unknown"),
])
def test_malformed_allocation_files_are_refused(tmp_path, content, problem):
    assert_design_refuses("message_allocation", tmp_path / "bad.json", content)
    with pytest.raises(ValueError, match=re.escape(problem)):
        load_allocation(tmp_path / "bad.json")


def test_without_a_generator_did_design_uses_the_tasks_tolerance(capsys):
    """--optimise uses no run: eps and whether it is absolute come from the task's profile (absolute 0.01), not
    the generic relative 0.05."""
    from did_core.cli import main

    assert main(["design", "message_allocation", str(EXAMPLES / "allocation_k3_m2.json"), "--optimise", "--steps",
                 "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["eps"], report["relative_eps"]) == (0.01, False)
