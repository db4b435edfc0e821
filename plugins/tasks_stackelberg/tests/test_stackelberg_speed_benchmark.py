"""``benchmarks/training_step.py --follower-bisection``: the commitment generator timed with its follower's
precision by the former bisection and by the safeguarded Newton, side by side, on the same answer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from did_stackelberg.refine import response_precision

ROOT = Path(__file__).resolve().parents[3]


def _benchmark() -> ModuleType:
    """``benchmarks/training_step.py`` (a script, not a package), registered while it runs (its dataclass needs it)."""
    spec = importlib.util.spec_from_file_location("training_step_benchmark", ROOT / "benchmarks" / "training_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_bisection_finds_the_precision_newton_finds():
    """The comparison times two searches for one answer: beta within the bisection's 1e-8 (float64)."""
    torch.manual_seed(2)
    regret = torch.rand(5, 7, 3, dtype=torch.float64)  # [A, B, K]
    real = torch.ones(5, 7, 1, dtype=torch.bool)
    real[3:, :2] = False
    regret = regret - regret.masked_fill(~real, torch.inf).amin(dim=0, keepdim=True)  # a best response: 0
    regret = regret.masked_fill(~real, 0.0)
    eps = torch.full((7, 3), 0.02, dtype=torch.float64)
    eps[0, 0] = 10.0  # uniform within eps: beta 0
    newton = response_precision(regret, real, eps)
    bisection = _benchmark().bisection_precision(regret, real, eps)
    assert newton[0, 0] == 0 and bisection[0, 0] == 0
    assert torch.allclose(newton, bisection, rtol=1e-8, atol=0)


def test_follower_bisection_rows_side_by_side(tmp_path, capsys):
    out = tmp_path / "step.md"
    _benchmark().main(["--tasks", "commitment", "--profiles", "quick", "--concepts", "cce", "--steps", "1",
                       "--batch", "8", "--eps", "0.003", "--absolute-eps", "--follower-bisection", "--out", str(out)])
    text = out.read_text()
    assert "eps 0.003 absolute" in text and "--follower-bisection" in text
    rows = [line for line in text.splitlines() if line.startswith("| commitment |")]
    assert [row.split(" | ")[3] for row in rows] == ["grouped, bisection follower", "fast, grouped"]
    assert rows[1].rstrip(" |").endswith("x")  # the speed-up of the whole step
