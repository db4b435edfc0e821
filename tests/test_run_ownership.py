"""A run directory belongs to one run: refusals happen before anything is written.

Checked by the file tree itself: after a refused command, the directory is
byte-for-byte what it was (or does not exist).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.plugins import exact_block_for
from did_core.runs import RunDir, RunDirError
from did_core.train import train
from run_helpers import TINY, snapshot


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "done"
    train(resolve_train_config(TINY), path)
    return path


def test_a_new_run_never_replaces_an_existing_one(finished: Path) -> None:
    before = snapshot(finished)
    with pytest.raises(RunDirError, match="already holds a run"):
        train(resolve_train_config({**TINY, "lr": 0.5, "seed": 7}), finished)
    assert snapshot(finished) == before


@pytest.mark.parametrize("change", [{"lr": 0.5}, {"batch_size": 5}, {"steps": 9}, {"concept": "ce"}])
def test_resume_with_a_training_change_is_refused_and_names_it(finished: Path, change: dict) -> None:
    before = snapshot(finished)
    field = next(iter(change))
    with pytest.raises(RunDirError, match=f"{field}="):
        train(resolve_train_config({**TINY, **change}), finished, resume=True)
    assert snapshot(finished) == before


def test_resume_may_change_evaluation_only_fields(tmp_path: Path) -> None:
    path = tmp_path / "run"
    train(resolve_train_config(TINY), path)
    train(resolve_train_config({**TINY, "eval_contexts": 2, "threads": 1}), path, resume=True)
    assert "eval_contexts: 2" in (path / "config.yaml").read_text()


def test_a_locked_directory_is_refused(tmp_path: Path) -> None:
    holder = RunDir(tmp_path / "busy").acquire()
    try:
        with pytest.raises(RunDirError, match="in use by another did process"):
            train(resolve_train_config(TINY), tmp_path / "busy")
        assert snapshot(tmp_path / "busy") == {".lock": snapshot(tmp_path / "busy")[".lock"]}
    finally:
        holder.release()


@pytest.mark.parametrize("flags, message", [
    ({"exact_block": "nope"}, "unknown block 'nope'"),
    ({"block_options": {"bogus": 1}}, "invalid options for block '{block}'"),
    # a sampler registered on its own (3-player games) that the toy objective (2-player games) cannot use
    ({"sampler": "toy_three_player", "sampler_options": {}}, "do not work together"),
])
def test_bad_components_fail_before_the_directory_exists(tmp_path: Path, flags: dict, message: str) -> None:
    message = message.format(block=exact_block_for("cce"))
    with pytest.raises((ValueError, LookupError), match=message):
        train(resolve_train_config({**TINY, **flags}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cli_refuses_run_dir_or_config_beside_resume(finished: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", str(finished), "--run-dir", str(tmp_path / "x")]) == 2
    assert "--run-dir cannot be combined with --resume" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _malicious() -> bytes:
    import io
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("open('/tmp/did_pwned', 'w').write('x')",))

    buffer = io.BytesIO()
    pickle.dump(Boom(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "malicious", "no_model"])
def test_damaged_checkpoints_give_one_line_and_change_nothing(finished: Path, tmp_path: Path, damage: str) -> None:
    import io
    import os
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    good = (run / "checkpoint.pt").read_bytes()
    buffer = io.BytesIO()
    torch.save({"step": 3}, buffer)
    (run / "checkpoint.pt").write_bytes({
        "empty": b"", "truncated": good[: len(good) // 2], "random": os.urandom(4096),
        "malicious": _malicious(), "no_model": buffer.getvalue()}[damage])
    before = snapshot(run)
    with pytest.raises(RunDirError, match="checkpoint .* (cannot be read|is not a did checkpoint|has no training state)") as error:
        train(resolve_train_config(TINY), run, resume=True)
    assert "\n" not in str(error.value)
    assert snapshot(run) == before
    assert not Path("/tmp/did_pwned").exists()


def test_run_dir_naming_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a run")
    with pytest.raises(RunDirError, match="not a directory"):
        train(resolve_train_config(TINY), target)
    assert target.read_text() == "not a run"
