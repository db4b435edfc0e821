"""``--range`` (the value over the whole eps-equilibrium set) on a task whose value is not linear in the joint, and
``--worst-case-weight`` on such a task: one line, exit 2, nothing written (the toy task's value has no linear form)."""

from __future__ import annotations

import pytest
import yaml

import toys
from did_core.cli import main
from run_helpers import TINY, snapshot

pytestmark = pytest.mark.usefixtures("toy_plugins")


@pytest.fixture
def toy_plugins():
    with toys.toy_plugins():
        yield


def _one_error(capsys, *parts: str) -> None:
    out = capsys.readouterr()
    assert out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err + out.out and all(part in out.err for part in parts), out.err


def test_eval_range_on_a_value_not_linear_in_the_joint_is_one_line_and_writes_nothing(toy_run, capsys):
    before = snapshot(toy_run)
    assert main(["eval", str(toy_run), "--contexts", "4", "--range"]) == 2
    _one_error(capsys, "not linear in the joint")
    assert snapshot(toy_run) == before


def test_worst_case_training_of_a_value_not_linear_in_the_joint_is_refused_before_the_run(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["train", "--config", str(config), "--worst-case-weight", "1", "--run-dir", str(tmp_path / "r")]) == 2
    _one_error(capsys, "--worst-case-weight", "not linear in the joint")
    assert not (tmp_path / "r").exists()
