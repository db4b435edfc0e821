"""The makespan over the eps-equilibrium set (docs/mathematics.md, section 8): the linear form, and the
worst-case guard's promise on held-out contexts of the shipped generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from did_core.cli import main
from did_core.components import build_components
from did_core.config import load_yaml, resolve_train_config
from did_core.equilibrium_range import context_ranges, value_range
from did_core.equilibria import Epsilon
from did_core.evaluate import evaluate_generator
from did_core.plugins import create, get_concept
from did_core.registry import UnknownNameError
from did_core.runs import RunDir
from did_core.testing import assert_linear_value
from did_core.shipped import shipped_folder
from did_scheduling import SchedulingObjective, SchedulingSampler
from did_scheduling.design import load_jobs


def exact_block():
    try:
        return create("blocks", "exact_newton")
    except UnknownNameError:
        pytest.skip("no exact block installed (did-plugins-exact-cvx)")


@pytest.mark.parametrize("players", [2, 3])
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_the_makespan_is_linear_in_the_joint(players, concept):
    context = SchedulingSampler(n_players=players, min_machines=2, max_machines=4).sample(
        6, torch.Generator().manual_seed(players))
    objective = SchedulingObjective()
    x = -torch.rand(context["utilities"].shape, generator=torch.Generator().manual_seed(1))
    assert_linear_value(objective, context, x, exact_block(), get_concept(concept))


def _shipped_on_small_contexts(concept: str):
    """The shipped generator's config and components, its sampler cut to 2..4 machines (the generator is
    equivariant: it answers any size)."""
    folder = shipped_folder("scheduling", concept)
    raw = load_yaml(folder / "config.yaml")
    raw["sampler_options"] = {**raw.get("sampler_options", {}), "min_machines": 2, "max_machines": 4}
    cfg = resolve_train_config({}, raw)
    parts = build_components(cfg)
    run = RunDir(folder)
    run.load_model(parts.generator, run.load_checkpoint())
    return cfg, parts


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_the_worst_case_guard_is_never_worse_than_the_baselines_worst_case_on_held_out_contexts(concept):
    exact_block()
    cfg, parts = _shipped_on_small_contexts(concept)
    context = parts.sampler.sample(48, torch.Generator().manual_seed(4321))
    with torch.no_grad():
        x, x0 = parts.generator(context), parts.objective.baseline_intervention(context)
    ranges = context_ranges(parts.objective, context, x, x0, parts.concept, parts.eps)
    keep = ranges.keep(parts.objective)
    guarded = torch.where(keep.view(-1, *[1] * (x.dim() - 1)), x, x0)
    # the promise, re-measured from scratch on the guarded interventions: never worse than the baseline's worst
    worst, _ = value_range(parts.objective, context, guarded, parts.concept, parts.eps)
    assert bool((worst <= ranges.baseline_worst + 1e-9).all())  # minimised: worse is larger
    assert bool(keep.any())  # the shipped taxes shorten the worst-case makespan somewhere
    result = evaluate_generator(cfg, parts, [cfg.exact_block], contexts=48, seed=4321, ranges=True)
    r = result[cfg.exact_block].range
    assert r.kept_share == pytest.approx(float(keep.double().mean()))
    assert r.guarded_worst.metric <= r.without_worst.metric + 1e-12


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "scheduling_two_jobs.json"


def test_did_design_range_reports_both_ranges_in_the_metric(capsys):
    """``did design --range --json``: per block ``range_without`` and ``range_with`` ([worst, best], a change of
    the makespan from the untaxed equilibrium's), the same LP answer as :func:`value_range`, and the guard's pick."""
    exact_block()
    assert main(["design", "scheduling", str(EXAMPLE), "--optimise", "--steps", "3", "--block", "exact_newton",
                 "--range", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    entry = report["blocks"]["exact_newton"]
    (w0, b0), (w1, b1) = entry["range_without"], entry["range_with"]
    assert w0 >= 0.0 >= b0 - 1e-9 and w1 >= entry["value_change"] - 1e-7 >= b1 - 1e-7  # ME inside, makespan: lower
    context = load_jobs(EXAMPLE)
    x = torch.tensor(report["intervention"], dtype=torch.float64).unsqueeze(0)
    worst, best = value_range(SchedulingObjective(), context, x, get_concept("cce"), Epsilon(0.05))
    assert w1 == pytest.approx(float(worst[0]) - entry["value_without"], abs=1e-9)
    assert b1 == pytest.approx(float(best[0]) - entry["value_without"], abs=1e-9)
    assert entry["worst_case_guard"]["kept"] == ("intervention" if w1 < w0 else "baseline")


def test_did_eval_range_stores_the_ranges_and_refuses_a_task_without_a_linear_value(tmp_path, capsys):
    exact_block()
    out = tmp_path / "report.json"
    assert main(["eval", "--shipped", "scheduling", "--contexts", "4", "--range", "--out", str(out)]) == 0
    stored = json.loads(out.read_text())
    entry = next(iter(stored["blocks"].values()))["range"]
    assert entry["with"]["worst"]["contexts"] == 4 and "worst_case_guard" in entry
    assert "eps-equilibrium set" in out.with_suffix(".md").read_text()
    capsys.readouterr()
    assert main(["eval", "--shipped", "inverse", "--contexts", "4", "--range", "--out", str(tmp_path / "i.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not linear in the joint" in err and not (tmp_path / "i.json").exists()
