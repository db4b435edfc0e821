"""A file system that refuses writes: one ``did: error:`` line naming the file and the reason, nothing half-written.

Three ways a write is refused: a run directory without write permission
(``chmod 0o555``; skipped as root, whom permissions do not stop), a read-only file
system (``EROFS`` from every file creation under the run, simulated by the fixture
``read_only`` of conftest.py), and a full
disk (``ENOSPC`` when a file is synced, simulated). The commands run in this
process through ``main(argv)``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import yaml

from did_core.cli import main
from run_helpers import TINY, snapshot


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture
def run(toy_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(toy_run, copy)
    return copy


def _one_error(capsys, *parts: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("did: error:") and err.count("\n") == 1, err
    assert all(part in err for part in parts), err


def _resume_eval_and_new_run_refused(run: Path, config: Path, new: Path, reason: str, capsys) -> None:
    """``did train --resume``, ``did eval`` on ``run`` and a new ``did train`` into ``new``: one line each."""
    assert main(["train", "--resume", str(run)]) == 2
    _one_error(capsys, str(run), reason)
    assert main(["eval", str(run), "--contexts", "2"]) == 2
    _one_error(capsys, str(run), reason)
    assert main(["train", "--config", str(config), "--run-dir", str(new)]) == 2
    _one_error(capsys, str(new), reason)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only directories")
def test_a_read_only_run_directory_is_refused_before_any_work(run, config, tmp_path, capsys):
    before = snapshot(run)
    run.chmod(0o555)
    try:
        _resume_eval_and_new_run_refused(run, config, run / "inner", "Permission denied", capsys)
    finally:
        run.chmod(0o755)
    assert snapshot(run) == before


def test_a_read_only_file_system_is_one_line(run, config, tmp_path, capsys, read_only):
    read_only(tmp_path)
    before = snapshot(tmp_path)
    _resume_eval_and_new_run_refused(run, config, tmp_path / "new", "Read-only file system", capsys)
    shutil.rmtree(tmp_path / "new")  # the folder itself could be made; nothing in it
    assert snapshot(tmp_path) == before


@pytest.fixture
def full_disk(monkeypatch):
    """Make every ``fsync`` fail as on a full disk (where a write is refused at the latest)."""
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return lambda: monkeypatch.setattr(os, "fsync", fsync)


def test_training_on_a_full_disk_writes_no_partial_file(config, tmp_path, capsys, full_disk):
    full_disk()
    assert main(["train", "--config", str(config), "--run-dir", str(tmp_path / "new")]) == 2
    _one_error(capsys, str(tmp_path / "new" / "config.yaml"), "No space left on device")
    assert set(snapshot(tmp_path / "new")) == {".lock"}  # no config, no temporary file


def test_evaluating_on_a_full_disk_keeps_the_previous_report_in_place(run, capsys, full_disk):
    assert main(["eval", str(run), "--contexts", "2"]) == 0
    capsys.readouterr()
    before = snapshot(run)
    full_disk()
    assert main(["eval", str(run), "--contexts", "3"]) == 2
    _one_error(capsys, str(run / "report.json"), "No space left on device")
    assert snapshot(run) == before  # report.json as it was, no report.previous.json, no temporary file
