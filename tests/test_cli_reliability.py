"""Wrong answers never exit 0, and bad evaluation options are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.train import train
from run_helpers import TINY


def test_solve_json_is_strict_json(tmp_path, capsys):
    game = tmp_path / "g.json"
    game.write_text(json.dumps({"payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]}))
    assert main(["solve", str(game), "--json"]) == 0  # the preferred exact block
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "run"
    train(resolve_train_config(TINY), path)
    return path


@pytest.mark.parametrize("flags, message", [(["--polish", "--polish-budget", "0"], "--polish-budget must be >= 1"),
                                            (["--polish", "--polish-budget", "-5"], "--polish-budget must be >= 1"),
                                            (["--blocks", ""], "--blocks names no block")])
def test_bad_eval_options_are_refused(run, capsys, flags, message):
    assert main(["eval", str(run), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (run / "report.json").exists()


def test_evaluating_an_unfinished_run_says_so(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "unfinished"
    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    (copy / "config.yaml").write_text(yaml.safe_dump({**config, "steps": 10}, sort_keys=False))
    assert main(["eval", str(copy), "--contexts", "2"]) == 0
    assert "stopped at step 3 of 10" in capsys.readouterr().err


def test_eval_refuses_a_run_that_is_being_written(run, capsys):
    from did_core.runs import RunDir

    holder = RunDir(run).acquire()
    try:
        assert main(["eval", str(run), "--contexts", "2"]) == 2
        assert "in use by another did process" in capsys.readouterr().err
    finally:
        holder.release()


def test_a_second_eval_keeps_the_previous_report(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "again"
    shutil.copytree(run, copy)
    assert main(["eval", str(copy), "--contexts", "2"]) == 0
    first = (copy / "report.json").read_text()
    assert main(["eval", str(copy), "--contexts", "3"]) == 0
    assert "previous report is kept" in capsys.readouterr().err
    assert (copy / "report.previous.json").read_text() == first
    assert (copy / "report.previous.md").is_file() and (copy / "report.json").read_text() != first


def _special_inputs(tmp_path: Path) -> dict[str, Path]:
    """Files a user may name by mistake that are not regular files (a FIFO would hang a plain read)."""
    import os

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.npy"
    zero.symlink_to("/dev/zero")
    return {"fifo": fifo, "device": zero, "directory": tmp_path}


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_non_regular_inputs_are_refused_in_one_line(tmp_path, capsys, kind):
    path = _special_inputs(tmp_path)[kind]
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("did: error:") and err.count("\n") == 1 and str(path) in err
    assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("did: error: config file") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_bytes(b"steps: 3\n# caf\xe9 in latin-1\n")
    assert main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_oversized_game_file_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    from did_core.game_io import file_bytes

    monkeypatch.setattr(file_bytes, "GAME_FILE_LIMIT", 64)
    game = tmp_path / "big.json"
    game.write_text(json.dumps({"payoffs": [[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]]], "pad": "x" * 100}))
    assert main(["solve", str(game)]) == 2
    assert "files over" in capsys.readouterr().err
