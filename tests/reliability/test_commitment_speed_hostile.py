"""Hostile flags of ``benchmarks/training_step.py`` added for the commitment generator's speed comparison:
a non-finite or non-positive ``--eps`` and malformed ``--generator-options`` (not JSON, not an object, an
option of the wrong type) are refused before anything is measured: exit 2, the reason on the last line of
standard error, nothing written."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from benchmark_helpers import ROOT
from did_core.plugins import registry


def _training_step():
    """``benchmarks/training_step.py``, registered in ``sys.modules`` (its dataclass needs its module there)."""
    spec = importlib.util.spec_from_file_location("training_step_benchmark", ROOT / "benchmarks" / "training_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("flags, what", [
    (["--eps", "nan"], "--eps must be a finite number > 0"),
    (["--eps", "inf"], "--eps must be a finite number > 0"),
    (["--eps", "0"], "--eps must be a finite number > 0"),
    (["--eps", "-1"], "--eps must be a finite number > 0"),
    (["--generator-options", "{refine_steps: 0"], "not JSON"),
    (["--generator-options", "[0]"], "not a JSON object"),
    (["--tasks", "commitment", "--generator-options", '{"refine_steps": "many"}'], "refine_steps"),
    (["--tasks", "commitment", "--generator-options", '{"refine_steps": 1e400}'], "refine_steps"),
])
def test_bad_flags_are_refused_before_measuring(tmp_path, capsys, flags, what):
    if "commitment" in flags and "commitment" not in registry("tasks"):
        pytest.skip("task 'commitment' is not loaded (did-plugins-stackelberg not installed, or left out by "
                    "DID_LOAD_PLUGINS)")
    out = tmp_path / "step.md"
    with pytest.raises(SystemExit) as exit_:
        _training_step().main([*flags, "--profiles", "quick", "--concepts", "cce", "--steps", "1",
                                                "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert what in err[-1] and "Traceback" not in "\n".join(err)
    assert not out.exists()
