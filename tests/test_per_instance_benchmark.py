"""``benchmarks/per_instance.py``: the generator, per-instance optimisation and the bound on the same contexts."""

import re

import pytest

from benchmark_helpers import benchmark_module
from did_core.plugins import registry


def _module():
    return benchmark_module("per_instance")


def _row(text: str, label: str) -> list[float]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [float(v) for v in re.findall(r"([+-]?\d+\.\d+) \(", line)]


@pytest.mark.parametrize("task,concept", [("contract", "cce"), ("scheduling", "ce")])
def test_no_column_beats_the_bound_and_per_instance_never_loses(task, concept, tmp_path):
    if task not in registry("tasks"):
        pytest.skip(f"task {task!r} is not loaded (did-plugins-{task} not installed, or left out by DID_LOAD_PLUGINS)")
    out = tmp_path / "table.md"
    assert _module().main(["--task", task, "--concept", concept, "--contexts", "3", "--steps", "2",
                           "--out", str(out)]) == 0
    text = out.read_text()
    assert "python benchmarks/per_instance.py --task" in text
    generator, optimised, bound = _row(text, "all")
    sign = 1 if task == "contract" else -1  # contracts: higher is better; makespan: lower
    assert sign * optimised >= -1e-9  # the per-instance optimisation keeps no intervention if nothing beats it
    assert sign * (bound - optimised) >= -1e-9 and sign * (bound - generator) >= -1e-9


def test_a_bad_generator_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "table.md"
    assert _module().main(["--generator", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "config.yaml" in err
    assert not out.exists()
