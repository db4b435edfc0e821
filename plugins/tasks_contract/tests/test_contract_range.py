"""The principal's utility over the eps-equilibrium set (docs/mathematics.md, section 8): the linear form, the
maximum-entropy utility inside the range, and the worst-case guard's promise on held-out contexts."""

from __future__ import annotations

import pytest
import torch

from did_contract.task import ContractObjective, ContractSampler
from did_core.components import build_components
from did_core.config import load_yaml, resolve_train_config
from did_core.equilibrium_range import context_ranges, value_range
from did_core.plugins import create, get_concept
from did_core.registry import UnknownNameError
from did_core.runs import RunDir
from did_core.testing import assert_linear_value
from did_core.shipped import shipped_folder


def exact_block():
    try:
        return create("blocks", "exact_newton")
    except UnknownNameError:
        pytest.skip("no exact block installed (did-plugins-exact-cvx)")


@pytest.mark.parametrize("players, same", [(2, True), (2, False), (3, False)])
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_the_principals_utility_is_linear_in_the_joint(players, same, concept):
    sampler = ContractSampler(n_players=players, min_actions=2, max_actions=3, max_outcomes=4, same_actions=same)
    context = sampler.sample(6, torch.Generator().manual_seed(players))
    objective = ContractObjective()
    # negative entries too: limited liability counts them as 0, in the value and in the linear form alike
    x = torch.randn(6, players, 4, generator=torch.Generator().manual_seed(1))
    assert_linear_value(objective, context, x, exact_block(), get_concept(concept))


def test_the_worst_case_guard_is_never_worse_than_the_baselines_worst_case_on_held_out_contexts():
    exact_block()
    folder = shipped_folder("contract", "cce")
    raw = load_yaml(folder / "config.yaml")
    raw["sampler_options"] = {**raw.get("sampler_options", {}), "min_actions": 2, "max_actions": 5}
    parts = build_components(resolve_train_config({}, raw))
    run = RunDir(folder)
    run.load_model(parts.generator, run.load_checkpoint())
    parts.generator.eval()  # the shipped generator's answers, as did eval and did design take them
    context = parts.sampler.sample(48, torch.Generator().manual_seed(99))
    with torch.no_grad():
        x, x0 = parts.generator(context), parts.objective.baseline_intervention(context)
    ranges = context_ranges(parts.objective, context, x, x0, parts.concept, parts.eps)
    keep = ranges.keep(parts.objective)
    assert bool(keep.any()) and not bool(keep.all())  # the guard decides both ways on these contexts
    guarded = torch.where(keep.view(-1, 1, 1), x, x0)
    # the promise, re-measured from scratch on the guarded contracts: never worse than the baseline's worst case
    worst, _ = value_range(parts.objective, context, guarded, parts.concept, parts.eps)
    assert bool((worst >= ranges.baseline_worst - 1e-9).all())  # maximised: worse is smaller
