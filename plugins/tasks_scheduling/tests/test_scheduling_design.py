"""``did design scheduling JOBS.json``: the example's untaxed makespan against plain loops, taxes >= 0, bad files.

Truth: the untaxed game and the makespans of the example rebuilt here from the definitions
(docs/mathematics.md, 6.3), one joint action at a time, and solved by the exact block; the
expected makespan summed over the joint actions by hand.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import torch

from did_core.cli import main
from did_core.equilibria import Epsilon
from did_core.instance_files import InstanceError
from did_core.plugins import create, get_concept, registry
from did_core.testing import assert_design_refuses
from did_scheduling.design import SchedulingInstances, load_jobs
from did_scheduling.plugin import SCHEDULING
from did_scheduling.task import scheduling_game

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "scheduling_two_jobs.json"


def _run(capsys, *argv):
    code = main(["design", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def exact():
    if "exact_newton" not in registry("blocks"):
        pytest.skip("did-plugins-exact-cvx is not installed")
    return create("blocks", "exact_newton")


def _untaxed_expected_makespan(times: list[list[float]], block) -> float:
    """E_sigma M of the untaxed game, sigma the exact block's CCE (relative eps 0.05), by plain loops."""
    n, m = len(times), len(times[0])
    game = torch.zeros(1, n, *[m] * n, dtype=torch.float64)
    makespan = {}
    for a in itertools.product(range(m), repeat=n):
        for i in range(n):
            others = sum(times[j][a[i]] for j in range(n) if j != i and a[j] == a[i])
            game[(0, i, *a)] = -(times[i][a[i]] + 0.5 * others)
        makespan[a] = max(sum(times[i][k] for i in range(n) if a[i] == k) for k in range(m))
    sigma = block(game, torch.ones(1, n, m, dtype=torch.bool), concept=get_concept("cce"), eps=Epsilon(0.05, relative=True)).sigma
    return sum(float(sigma[(0, *a)]) * makespan[a] for a in makespan)


def test_task_reads_instances_and_the_example_loads():
    assert isinstance(SCHEDULING.instances, SchedulingInstances)
    context = load_jobs(EXAMPLE)
    times = json.loads(EXAMPLE.read_text())["times"]
    assert set(context) == {"times", "mask", "utilities", "makespan"}
    assert context["times"].shape == context["mask"].shape == (1, 2, 3) and context["mask"].all()
    assert context["times"].dtype == torch.get_default_dtype()
    utilities, makespan = scheduling_game(torch.tensor([times]), torch.ones(1, 2, 3, dtype=torch.bool))
    assert torch.equal(context["utilities"], utilities) and torch.equal(context["makespan"], makespan)
    assert context.players == ["Alice", "Bob"] and context.actions == [["fast", "medium", "slow"]] * 2


def test_example_untaxed_makespan_and_taxes(exact, capsys):
    expected = _untaxed_expected_makespan(json.loads(EXAMPLE.read_text())["times"], exact)
    code, out, err = _run(capsys, "scheduling", EXAMPLE, "--optimise", "--block", "exact_newton", "--steps", 5)
    assert code == 0, err
    section = out.split("block exact_newton (cce, relative eps 0.05):")[1]
    printed = re.search(r"expected makespan: ([0-9.]+) \(no tax\) -> ([0-9.]+) \(with the taxes\)", section)
    assert printed is not None, section
    assert float(printed.group(1)) == pytest.approx(expected, abs=5e-5)
    assert float(printed.group(2)) <= float(printed.group(1)) + 1e-4  # from no tax, the best iterate is kept
    taxes = out.split("taxes (")[1].split("\n\n")[0].splitlines()[2:]
    assert len(taxes) == 9 and taxes[0].split()[:2] == ["fast,", "fast"]
    assert all(float(v) >= 0 for line in taxes for v in line.split()[2:4])

    code, out, err = _run(capsys, "scheduling", EXAMPLE, "--optimise", "--block", "exact_newton", "--steps", 5,
                          "--json")
    assert code == 0, err
    report = json.loads(out)
    # abs 1e-6: the context holds the times in float32, as the sampler does
    assert report["blocks"]["exact_newton"]["value_without"] == pytest.approx(expected, abs=1e-6)
    assert (torch.tensor(report["intervention"]) <= 0).all()  # the intervention is -taxes
    assert report["machines"] == ["fast", "medium", "slow"] and report["players"] == ["Alice", "Bob"]


BAD = {
    "not_json.json": "{ not json",
    "list.json": "[[1, 2], [3, 4]]",
    "missing.json": {"machines": ["a", "b"]},
    "unknown.json": {"times": [[1, 2], [3, 4]], "speed": 2},
    "one_player.json": {"times": [[1, 2]]},
    "five_players.json": {"times": [[1, 2]] * 5},
    "one_machine.json": {"times": [[1], [2]]},
    "ragged.json": {"times": [[1, 2], [3]]},
    "negative.json": {"times": [[1, -2], [3, 4]]},
    "nan.json": '{"times": [[1, NaN], [3, 4]]}',
    "inf.json": '{"times": [[1, 2], [1e999, 4]]}',
    "text.json": {"times": [[1, "2"], [3, 4]]},
    "machines.json": {"times": [[1, 2], [3, 4]], "machines": ["a", "b", "c"]},
    "players.json": {"times": [[1, 2], [3, 4]], "players": ["A"]},
    "duplicate.json": {"times": [[1, 2], [3, 4]], "players": ["A", "A"]},
    "too_big.json": {"times": [[1] * 300] * 2},
    "a_directory": None,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_files_are_one_line_naming_the_file(name, tmp_path, capsys):
    path = tmp_path / name
    assert_design_refuses("scheduling", path, BAD[name], capsys)
    with pytest.raises(InstanceError):
        load_jobs(path)
