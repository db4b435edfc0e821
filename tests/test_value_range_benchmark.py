"""``benchmarks/value_range.py``: the ME value against its range over the eps-equilibrium set, and both guards."""

import json

import pytest

from benchmark_helpers import benchmark_module
from did_core.plugins import registry


@pytest.mark.parametrize("task,concept,extra", [("scheduling", "cce", []), ("commitment", "cce", ["--steps", "3"])])
def test_the_me_value_lies_in_the_range_and_the_worst_case_guard_keeps_its_promise(task, concept, extra, tmp_path):
    if task not in registry("tasks"):
        pytest.skip(f"task {task!r} is not loaded (its plugin is not installed, or left out by DID_LOAD_PLUGINS)")
    out = tmp_path / "table.md"
    assert benchmark_module("value_range").main(["--task", task, "--concept", concept, "--contexts", "6",
                                                 *extra, "--out", str(out)]) == 0
    assert "python benchmarks/value_range.py --task" in out.read_text()
    result = json.loads(out.with_suffix(".json").read_text())
    sign = -1 if result["minimize"] else 1  # sign * value: higher is better
    p = result["points"]
    for i in range(len(p["size"])):
        for me, worst, best in (("me", "worst", "best"), ("baseline_me", "baseline_worst", "baseline_best")):
            assert sign * p[worst][i] <= sign * p[me][i] + 1e-8 <= sign * p[best][i] + 2e-8
        assert sign * p["worst_guarded"][i] >= sign * p["baseline_worst"][i]
    if result["report_change"]:
        assert all(v == 0 for v in p["baseline_me"])


def test_a_bad_generator_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "table.md"
    assert benchmark_module("value_range").main(["--generator", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "config.yaml" in err
    assert not out.exists()
