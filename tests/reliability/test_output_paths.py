"""Where a command writes: one checked path for every output file (:func:`did_core.runs.output_file`).

A shipped generator's folder is only read, by every command (no lock, no file); ``did
eval --out`` writes ``FILE.json`` and ``FILE.md`` and refuses a device, a FIFO, a
directory, a missing directory, a name not ending in ``.json`` and a path inside a run
or shipped folder (unless ``--force``); ``did ship`` checks its destination and its
optional dependency before it writes anything, and writes the folder whole. Each
refusal is one ``did: error:`` line, exit 2, nothing changed on disk.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

import toys
from did_core.cli import main
from did_core.plugins import registry
from did_core.shipped import SHIPPED_FILES
from run_helpers import snapshot


def _one_error(capsys, *parts: str) -> None:
    out = capsys.readouterr()
    assert out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err + out.out
    assert all(part in out.err for part in parts), out.err


@pytest.fixture
def run(toy_run, tmp_path, capsys) -> Path:
    """A copy of the finished toy run, evaluated (it has a report.json, so it can be shipped)."""
    copy = tmp_path / "run"
    shutil.copytree(toy_run, copy)
    assert main(["eval", str(copy), "--contexts", "3"]) == 0
    capsys.readouterr()
    return copy


@pytest.fixture
def shipped(run, tmp_path, monkeypatch, capsys) -> Path:
    """The toy run shipped into ``tmp_path/shipped/cce``, which the toy task declares as its shipped folder."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    assert main(["ship", str(run), str(folder / "cce")]) == 0
    capsys.readouterr()
    tasks = registry("tasks")
    entry = tasks.get(toys.TOY_TASK)
    monkeypatch.setitem(tasks._entries, toys.TOY_TASK,
                        dataclasses.replace(entry, value=dataclasses.replace(entry.value, shipped=folder)))
    return folder / "cce"


# ------------------------------------------------------------------------------- shipped folders are read-only

def test_no_command_writes_in_a_shipped_folder(shipped, tmp_path, capsys, read_only):
    """``did eval --shipped`` took the run's lock in the shipped folder (a .lock file, and on a read-only
    install: "cannot write in run directory .../shipped/cce: Read-only file system")."""
    before = snapshot(shipped)
    shipped.chmod(0o555)  # an install the user cannot write (root writes anyway: read_only stops it)
    read_only(shipped)
    try:
        for argv in (["eval", "--shipped", toys.TOY_TASK, "--contexts", "3"],
                     ["eval", "--shipped", toys.TOY_TASK, "--contexts", "3", "--out", str(tmp_path / "r.json")],
                     ["eval", "--shipped", toys.TOY_TASK, "--from-json"]):
            code = main(argv)
            out = capsys.readouterr()
            assert code == 0 and "did: error" not in out.err, out.err
    finally:
        shipped.chmod(0o755)
    assert snapshot(shipped) == before
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["contexts"] == 3


def test_an_installed_shipped_generator_is_only_read(capsys, read_only):
    """The same with a plugin's own shipped folder, on a file system that refuses every write under it."""
    if "inverse" not in registry("tasks"):
        pytest.skip("the task inverse is not loaded (did-plugins-inverse not installed, or left out by "
                    "DID_LOAD_PLUGINS)")
    from did_core.shipped import shipped_folder

    folder = shipped_folder("inverse", "cce")
    before = snapshot(folder)
    read_only(folder)
    examples = Path(__file__).resolve().parents[2] / "examples"
    for argv in (["eval", "--shipped", "inverse", "--contexts", "2"],
                 ["design", "inverse", str(examples / "inverse_target.json")]):
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0 and "did: error" not in out.err, out.err
    assert snapshot(folder) == before


# ---------------------------------------------------------------------------------------- did eval --out FILE

def _special(tmp_path: Path) -> dict[str, Path]:
    """Paths that are not regular files, each named ``*.json``."""
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "full.json").symlink_to("/dev/full")
    (tmp_path / "folder.json").mkdir()
    return {"FIFO": tmp_path / "pipe.json", "device": tmp_path / "full.json", "directory": tmp_path / "folder.json"}


@pytest.mark.parametrize("kind", ["FIFO", "device", "directory"])
def test_out_refuses_what_is_not_a_regular_file(shipped, tmp_path, capsys, kind):
    """``--out /dev/full`` exited 0 and replaced the device with a regular file (and wrote /dev/full.md)."""
    path = _special(tmp_path)[kind]
    before = snapshot(tmp_path)
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "3", "--out", str(path)]) == 2
    _one_error(capsys, str(path), f"is a {kind}" if kind != "device" else "is a device", "not a regular file")
    assert snapshot(tmp_path) == before
    assert not path.with_suffix(".md").exists()


def test_out_dev_full_is_refused_and_stays_a_device(shipped, capsys):
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "3", "--out", "/dev/full"]) == 2
    _one_error(capsys, "/dev/full", "FILE.json")
    assert Path("/dev/full").is_char_device() and not Path("/dev/full.md").exists()


@pytest.mark.parametrize("name", ["r.md", "r", "report.JSON.txt", ".json"])
def test_out_must_name_a_json_file(shipped, tmp_path, capsys, name):
    """``--out r.md`` wrote the JSON report to r.md, then replaced it with the Markdown: the JSON was lost."""
    before = snapshot(tmp_path)
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "3", "--out", str(tmp_path / name)]) == 2
    _one_error(capsys, "must name a FILE.json")
    assert snapshot(tmp_path) == before


def test_out_writes_the_json_and_the_markdown_each_to_its_own_name(shipped, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "3", "--out", str(out)]) == 0
    assert f"written: {out}, {tmp_path / 'r.md'}" in capsys.readouterr().out
    assert json.loads(out.read_text())["meta"]["contexts"] == 3
    assert (tmp_path / "r.md").read_text().startswith("| task:")


def test_out_into_a_missing_directory_is_refused(shipped, tmp_path, capsys):
    """The directory was created silently."""
    out = tmp_path / "missing" / "r.json"
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "3", "--out", str(out)]) == 2
    _one_error(capsys, f"directory {tmp_path / 'missing'} does not exist")
    assert not out.parent.exists()


def test_out_inside_a_run_only_with_force(shipped, run, capsys):
    """``--out RUN/report.json`` replaced another run's report with no .previous copy (then did ship of that run
    failed)."""
    before = snapshot(run)
    out = run / "report.json"
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "2", "--out", str(out)]) == 2
    _one_error(capsys, str(out), f"inside {run}", "--force")
    assert snapshot(run) == before
    other = run / "other.json"
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "2", "--out", str(other), "--force"]) == 0
    assert json.loads(other.read_text())["meta"]["contexts"] == 2 and (run / "other.md").is_file()
    assert (run / "report.json").read_bytes() == before["report.json"]


def test_out_inside_a_shipped_folder_is_refused(shipped, capsys):
    before = snapshot(shipped)
    assert main(["eval", "--shipped", toys.TOY_TASK, "--contexts", "2", "--out", str(shipped / "x.json")]) == 2
    _one_error(capsys, f"inside {shipped}")
    assert snapshot(shipped) == before


# -------------------------------------------------------------------------------------------------- did ship

@pytest.mark.parametrize("where, message", [
    ("run", "is the run"),
    ("run/sub", "is inside the run"),
    (".", "holds the run"),
    ("missing/cce", "does not exist"),
    ("full", "is not empty; --force"),
    ("other_run/sub", "inside"),
    ("a_file", "is not a directory"),
])
def test_ship_checks_its_destination_before_writing(run, tmp_path, capsys, where, message):
    """``did ship run0 run0`` replaced the run's resumable checkpoint by a weights-only one and wrote a model card;
    into a non-empty folder or a folder inside the run it wrote six files; each then failed on a missing
    optional dependency."""
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("the user's")
    shutil.copytree(run, tmp_path / "other_run")
    (tmp_path / "a_file").write_text("x")
    before = snapshot(tmp_path)
    assert main(["ship", str(run), str(tmp_path / where)]) == 2
    _one_error(capsys, message)
    assert snapshot(tmp_path) == before


def test_ship_force_replaces_only_a_shipped_folder(run, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("the user's")
    before = snapshot(tmp_path)
    assert main(["ship", str(run), str(tmp_path / "full"), "--force"]) == 2
    _one_error(capsys, "is not a shipped folder", "mine.txt")
    assert snapshot(tmp_path) == before
    dest = tmp_path / "shipped"
    assert main(["ship", str(run), str(dest)]) == 0
    (dest / "MODEL_CARD.md").write_text("old card")
    assert main(["ship", str(run), str(dest)]) == 2  # not empty
    capsys.readouterr()
    assert main(["ship", str(run), str(dest), "--force"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(SHIPPED_FILES)
    assert (dest / "MODEL_CARD.md").read_text() != "old card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "run", "shipped"]  # no temporary folder left


def test_ship_without_matplotlib_writes_nothing(run, tmp_path, capsys, monkeypatch):
    """The missing optional dependency was found after six files were written."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    before = snapshot(tmp_path)
    assert main(["ship", str(run), str(tmp_path / "shipped")]) == 2
    _one_error(capsys, "plots need matplotlib")
    assert snapshot(tmp_path) == before


def test_a_failed_ship_leaves_the_shipped_folder_as_it_was(run, tmp_path, capsys, monkeypatch):
    """The folder is written whole: a write the disk refuses half-way changes nothing, leaves no temporary folder."""
    dest = tmp_path / "shipped"
    assert main(["ship", str(run), str(dest)]) == 0
    notes = tmp_path / "notes.md"
    notes.write_text("A new model card.\n")
    before = snapshot(tmp_path)

    def full_disk(records, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("did_core.shipped.training_curves", full_disk)  # the last file written
    assert main(["ship", str(run), str(dest), "--force", "--notes", str(notes)]) == 2
    _one_error(capsys, str(dest), "No space left on device")
    assert snapshot(tmp_path) == before
