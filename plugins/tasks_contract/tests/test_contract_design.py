"""``did design contract`` (the core command on the contract's instance format): the Christmas-tree example,
a trained run's generator, malformed files, tasks that cannot be designed for from a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from did_contract import ContractGenerator, ContractSampler
from did_contract.design import ContractInstances, optimise_contracts
from did_contract.plugin import CONTRACT
from did_contract.problem import ProblemError, load_problem
from did_contract.task import principal_utility
from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.plugins import create, exact_block_for, registry, get_concept
from did_core.runs import RunDir

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "christmas_tree.json"


def _run(capsys, *argv):
    code = main(["design", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_example_loads():
    problem = load_problem(EXAMPLE)
    assert problem.agents == ["Alice", "Bob"] and problem.outcomes == ["tree set up", "tree burns down", "no tree"]
    ctx = problem.context
    assert ctx["costs"].shape == (1, 2, 2, 2) and ctx["transitions"].shape == (1, 2, 2, 3)
    assert torch.allclose(ctx["transitions"].sum(-1), torch.ones(1, 2, 2, dtype=torch.float64))


def test_task_reads_instances():
    assert isinstance(CONTRACT.instances, ContractInstances)
    context = CONTRACT.instances.load(EXAMPLE)
    assert context.problem.agents == ["Alice", "Bob"]
    assert set(context) == set(load_problem(EXAMPLE).context)


def test_christmas_tree_command(capsys):
    code, out, err = _run(capsys, "contract", EXAMPLE, "--optimise", "--steps", 3, "--block", "exact_newton")
    assert code == 0, err
    for text in ("contract instance:", "players: 2  actions: [2, 2]",
                 "contracts (per-instance search (", " through exact_newton, 3 steps",
                 "pays to", "Alice", "Bob", "tree set up", "tree burns down", "no tree",
                 "block exact_newton (cce, relative eps 0.05):", "equilibrium, no contract:",
                 "equilibrium, with the contracts:", "Alice, Bob", "don't help, don't help",
                 "principal's utility:", "(no contract) ->", "change ", "higher is better"):
        assert text in out, text
    assert registry("commands").get("design").provider == "did-core"  # a core command, no plugin's


def test_the_shipped_generator_is_the_default_and_is_guarded(capsys):
    """Without --generator or --optimise the shipped CCE generator answers; never worse than no contract."""
    from did_core.shipped import shipped_concepts

    if "cce" not in shipped_concepts("contract"):
        pytest.skip("the contract plugin ships no CCE generator")
    code, out, err = _run(capsys, "contract", EXAMPLE, "--json")
    assert code == 0, err
    report = json.loads(out)
    exact = report["blocks"][exact_block_for("cce")]
    assert "shipped generator (contract, cce)" in report["source"]
    assert exact["value_with"] >= exact["value_without"] - 1e-9


def test_christmas_tree_json_improves_under_exact(capsys):
    code, out, err = _run(capsys, "contract", EXAMPLE, "--optimise", "--steps", 20, "--json")
    assert code == 0, err
    report = json.loads(out)
    name = exact_block_for("cce")  # no --block: the preferred installed exact block
    exact = report["blocks"][name]
    assert not exact["optional"] and exact["improved"]
    # the best contract met (or no contract) is kept, so the exact block never reports a loss; for this example
    # the screened bonuses already pay off, and the search beats every single-outcome bonus (+2.55 at best)
    assert exact["value_change"] > 2.55
    assert exact["value_change"] == pytest.approx(exact["value_with"] - exact["value_without"])
    assert report["metric"] == "utility change" and report["report_change"] and not report["minimize"]
    assert report["agents"] == ["Alice", "Bob"] and report["outcomes"][0] == "tree set up"
    assert report["actions"] == [["help", "don't help"], ["help", "don't help"]]
    contracts = report["intervention"]
    assert len(contracts) == 2 and all(t >= 0 for row in contracts for t in row)
    assert sum(map(sum, exact["equilibrium_without"])) == pytest.approx(1.0)
    # without a contract nobody helps (mostly)
    assert exact["equilibrium_without"][1][1] > 0.9
    # the principal's utility under the contracts, recomputed from the reported joint
    problem = load_problem(EXAMPLE)
    sigma = torch.tensor(exact["equilibrium_with"], dtype=torch.float64).unsqueeze(0)
    utility = principal_utility(problem.context, torch.tensor([contracts], dtype=torch.float64), sigma)
    assert float(utility[0]) == pytest.approx(exact["value_with"], abs=1e-9)
    # every other installed block that is not exact is reported, as optional
    assert all(r["optional"] for n, r in report["blocks"].items() if n != name)


def test_optimise_never_worse_than_no_contract():
    problem = load_problem(EXAMPLE)
    block = create("blocks", "exact_cvx")
    t = optimise_contracts(problem.context, block, get_concept("cce"), steps=0, scales=(1 / 64,), shares=(),
                           top_outcomes=1)
    # tiny bonuses only and no steps: nothing beats no contract, and zeros come back
    assert (t == 0).all()


def test_design_with_run_dir(tmp_path, capsys):
    cfg = resolve_train_config({"task": "contract", "generator_options": {"width": 4, "depth": 1}})
    run = RunDir(tmp_path / "run").create()
    (run.file("config.yaml")).write_text(yaml.safe_dump(cfg.model_dump()))
    sampler = ContractSampler(**cfg.sampler_options)
    generator = ContractGenerator(sampler, **cfg.generator_options)
    run.save_checkpoint({"model": generator.state_dict()})
    # --unguarded --fast: the untrained generator's own contracts (the guard may replace them by no contract).
    code, out, err = _run(capsys, "contract", EXAMPLE, "--run-dir", run.path, "--block", "exact_newton", "--json",
                          "--unguarded", "--fast")
    assert code == 0, err
    report = json.loads(out)
    assert report["source"].startswith("generator of")
    # By default the search starts from the generator's answer too: never worse than it, and it says so.
    code, out, err = _run(capsys, "contract", EXAMPLE, "--run-dir", run.path, "--block", "exact_newton", "--json",
                          "--unguarded")
    refined = json.loads(out)
    assert code == 0 and f"from the generator of {run.path}, refined" in refined["source"]
    assert (refined["blocks"]["exact_newton"]["value_with"]
            >= report["blocks"]["exact_newton"]["value_with"] - 1e-9)
    assert report["concept"] == cfg.concept and report["eps"] == cfg.eps
    assert cfg.block in report["blocks"] and "exact_newton" in report["blocks"]
    with torch.no_grad():
        expected = generator(load_problem(EXAMPLE).context)
    assert torch.allclose(torch.tensor(report["intervention"], dtype=torch.float64), expected[0].double(), atol=1e-6)
    code, _, err = _run(capsys, "contract", EXAMPLE, "--run-dir", tmp_path / "nowhere")
    assert code == 2 and "not a run directory" in err and err.count("\n") == 1
    other = RunDir(tmp_path / "other").create()
    other.file("config.yaml").write_text(yaml.safe_dump({"task": "inverse"}))
    code, out, err = _run(capsys, "contract", EXAMPLE, "--run-dir", other.path)
    assert code == 2 and out == "" and "is a run of task 'inverse', not 'contract'" in err and err.count("\n") == 1


BAD = {
    "not_json.json": "{ this is not json",
    "list.json": "[1, 2]",
    "missing.json": {"agents": ["A"], "actions": [["x"]], "outcomes": ["w"], "values": [1]},
    "unknown.json": {"agents": ["A"], "actions": [["x"]], "outcomes": ["w"], "values": [1], "costs": [[0]],
                     "transitions": [[1]], "colour": "red"},
    "shape.json": {"agents": ["A", "B"], "actions": [["x", "y"], ["x"]], "outcomes": ["w", "z"],
                   "values": [1, 2], "costs": [[[0], [0]], [[0], [0]]], "transitions": [[[1, 0]], [[0.5]]]},
    "sum.json": {"agents": ["A"], "actions": [["x", "y"]], "outcomes": ["w", "z"], "values": [1, 2],
                 "costs": [[0, 1]], "transitions": [[0.5, 0.4], [0, 1]]},
    "negative.json": {"agents": ["A"], "actions": [["x"]], "outcomes": ["w", "z"], "values": [1, 2],
                      "costs": [[0]], "transitions": [[1.5, -0.5]]},
    "nan.json": {"agents": ["A"], "actions": [["x"]], "outcomes": ["w"], "values": ["ten"], "costs": [[0]],
                 "transitions": [[1]]},
    "names.json": {"agents": [], "actions": [], "outcomes": ["w"], "values": [1], "costs": [],
                   "transitions": [1]},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_give_one_line_and_exit_2(name, tmp_path, capsys):
    path = tmp_path / name
    content = BAD[name]
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    code, out, err = _run(capsys, "contract", path)
    assert code == 2 and out == ""
    assert err.startswith("did: error:") and err.count("\n") == 1, err
    with pytest.raises(ProblemError):
        load_problem(path)


def test_missing_file_and_unknown_task(tmp_path, capsys):
    code, _, err = _run(capsys, "contract", tmp_path / "absent.json")
    assert code == 2 and "cannot read" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "auction", EXAMPLE)
    assert code == 2 and "unknown task 'auction'" in err and err.count("\n") == 1


def test_task_without_instances(capsys):
    without = [entry.name for entry in registry("tasks") if entry.value.instances is None]
    if not without:
        pytest.skip("no installed task without instance files")
    code, out, err = _run(capsys, without[0], EXAMPLE)
    assert code == 2 and out == ""
    assert err == (f"did: error: task {without[0]} cannot read instance files "
                   f"(its plugin sets no Task.instances)\n")
