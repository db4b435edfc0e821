"""``benchmarks/screener_proposals.py``: the bonus screener alone and with proposals checked under the exact block."""

import json

import pytest

from benchmark_helpers import benchmark_module
from did_core.cli import main as did
from did_core.plugins import registry


def _needs_contract():
    if "contract" not in registry("tasks"):
        pytest.skip("task 'contract' is not loaded (did-plugins-contract not installed, or left out by "
                    "DID_LOAD_PLUGINS)")


@pytest.fixture(scope="module")
def screener_run(tmp_path_factory):
    _needs_contract()
    run = tmp_path_factory.mktemp("screener") / "run"
    assert did(["train", "--task", "contract", "--generator", "contract_screener", "--generator-options",
                "{width: 8, depth: 1, depth_outcome: 1}", "--steps", "20", "--imitation-contexts", "64",
                "--imitation-steps", "20", "--eval-contexts", "8", "--run-dir", str(run)]) == 0
    return run


def test_checked_proposals_are_never_worse_than_no_contract(screener_run, tmp_path):
    out = tmp_path / "table.md"
    module = benchmark_module("screener_proposals")
    assert module.main(["--generator", str(screener_run), "--proposals", "0,3", "--contexts", "12",
                        "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    alone, checked = result["rows"]
    assert (alone["proposals"], checked["proposals"]) == (0, 3)
    assert checked["all"]["mean"] >= -1e-9 and checked["all"]["contexts"] == 12
    assert "| 3 |" in out.read_text() and "python benchmarks/screener_proposals.py" in out.read_text()


def test_a_run_of_another_generator_is_one_line_and_writes_nothing(tmp_path, capsys):
    _needs_contract()
    run = tmp_path / "run"
    assert did(["train", "--task", "contract", "--steps", "2", "--eval-contexts", "4", "--generator-options",
                "{width: 4, depth: 1, depth_outcome: 0}", "--run-dir", str(run)]) == 0
    out = tmp_path / "table.md"
    capsys.readouterr()
    assert benchmark_module("screener_proposals").main(["--generator", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "not a run of the bonus screener" in err
    assert not out.exists()
