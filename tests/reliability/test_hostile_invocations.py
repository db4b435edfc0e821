"""Hostile invocations of every ``did`` command: one error line, exit code 2, nothing written, no hang.

Each case is a command line run in a working directory that holds damaged,
foreign and special files next to a finished toy run (:func:`workdir`). Every
case must exit 2 with stderr exactly one line starting ``did: error:`` (no
traceback, no usage text) and leave every file and folder of the working
directory as it was, byte for byte; a valid case exits 0 and writes nothing.

The cases run in this process through ``main(argv)`` (each is refused before any
real work); a few run the console script in a subprocess with a time limit, for
what only a whole process shows (start-up, the exit code the shell sees).
Commands of a plugin that is not installed are skipped.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from did_core.cli import main
from did_core.plugins import registry
from run_helpers import console_env, snapshot

GAME = '{"payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]}'
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _hostile_files(root: Path, run: Path) -> None:
    """Files a user may name by mistake, or that a crash, a disk or another program may have damaged."""
    (root / "game.json").write_text(GAME)
    (root / "empty.json").write_text("")
    (root / "garbage.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2, 3]")
    (root / "binary.npy").write_bytes(os.urandom(64))
    (root / "deep.json").write_text('{"payoffs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (root / "long_number.json").write_text(GAME.replace("3", "3" * 5000, 1))
    (root / "deep.yaml").write_text("task: " + "[" * 10_000 + "]" * 10_000)
    header = io.BytesIO()  # a 100-byte file whose header asks numpy for 149 GiB
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2, 10**5, 10**5)})
    (root / "lying_header.npy").write_bytes(header.getvalue() + bytes(16))
    (root / "latin1.yaml").write_bytes(b"task: caf\xe9\n")
    (root / "list.yaml").write_text("- task\n- toy_task\n")
    (root / "unknown_key.yaml").write_text("task: toy_task\nbogus_option: 1\n")
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, buffer)
    (root / "foreign.pt").write_bytes(buffer.getvalue())
    (root / "truncated.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:100])
    (root / "not_a_run").mkdir()
    shutil.copytree(run, root / "run")
    damaged = root / "damaged_run"
    shutil.copytree(run, damaged)
    (damaged / "config.yaml").write_text("task: [unclosed\n")
    foreign = root / "foreign_run"
    shutil.copytree(run, foreign)
    (foreign / "checkpoint.pt").write_bytes((root / "foreign.pt").read_bytes())
    edited = root / "edited_run"  # its config.yaml no longer describes the network in its checkpoint
    shutil.copytree(run, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["generator_options"] = {**config["generator_options"], "width": 16}
    (edited / "config.yaml").write_text(yaml.safe_dump(config))
    (root / "bad_report.json").write_text('{"rows": 3}')
    os.mkfifo(root / "pipe.json")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, toy_run: Path) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    _hostile_files(root, toy_run)
    return root


SOLVE = [
    ["solve"],
    ["solve", "missing.json"],
    ["solve", "empty.json"],
    ["solve", "garbage.json"],
    ["solve", "list.json"],
    ["solve", "binary.npy"],
    ["solve", "lying_header.npy"],
    ["solve", "deep.json"],
    ["solve", "long_number.json"],
    ["solve", "foreign.pt"],
    ["solve", "run"],
    ["solve", "pipe.json"],
    ["solve", "game.json", "--eps", "-1"],
    ["solve", "game.json", "--eps", "nan"],
    ["solve", "game.json", "--eps", "inf"],
    ["solve", "game.json", "--eps", "abc"],
    ["solve", "game.json", "--concept", ""],
    ["solve", "game.json", "--block", ""],
    ["solve", "game.json", "--block", "nope"],
    ["solve", "game.json", "--block-options", "[1, 2]"],
    ["solve", "game.json", "--block-options", "{bogus: 1}"],
    ["solve", "game.json", "--block-options", "{max_memory_gb: -1}"],
    ["solve", "game.json", "--block-options", "{max_memory_gb: abc}"],
    ["solve", "game.json", "--bogus-flag"],
]

TRAIN = [
    ["train"],
    ["train", "--task", ""],
    ["train", "--task", "nope"],
    ["train", "--task", "toy_task", "--steps", "0"],
    ["train", "--task", "toy_task", "--steps", "-3"],
    ["train", "--task", "toy_task", "--steps", "abc"],
    ["train", "--task", "toy_task", "--batch-size", "0"],
    ["train", "--task", "toy_task", "--lr", "-1"],
    ["train", "--task", "toy_task", "--eps", "0"],
    ["train", "--task", "toy_task", "--concept", "nope"],
    ["train", "--task", "toy_task", "--concept", ""],
    ["train", "--task", "toy_task", "--block", "nope"],
    ["train", "--task", "toy_task", "--block", ""],
    ["train", "--task", "toy_task", "--block-options", "5"],
    ["train", "--task", "toy_task", "--block-options", "{bogus: 1}"],
    ["train", "--task", "toy_task", "--sampler-options", "{min_actions: -2}"],
    ["train", "--task", "toy_task", "--device", "gpu"],
    ["train", "--task", "toy_task", "--profile", "huge"],
    ["train", "--task", "toy_task", "--threads", "0"],
    ["train", "--task", "toy_task", "--nproc", "0"],
    ["train", "--config", "missing.yaml"],
    ["train", "--config", "latin1.yaml"],
    ["train", "--config", "list.yaml"],
    ["train", "--config", "deep.yaml"],
    ["train", "--config", "unknown_key.yaml"],
    ["train", "--config", "pipe.json"],
    ["train", "--resume", "missing"],
    ["train", "--resume", "not_a_run"],
    ["train", "--resume", "damaged_run"],
    ["train", "--resume", "foreign_run"],
    ["train", "--resume", "run", "--run-dir", "elsewhere"],
    ["train", "--task", "toy_task", "--run-dir", "run"],
    ["train", "--task", "toy_task", "--run-dir", "game.json"],
    ["train", "--task", "toy_task", "--run-dir", ""],
    ["train", "--resume", ""],
    ["train", "--task", "toy_task", "--lr", "inf"],
    ["train", "--task", "toy_task", "--eps", "nan"],
    ["train", "--task", "toy_task", "--eval-contexts", "10000000000000"],
    ["train", "--task", "toy_task", "--batch-size", "10000000000000"],
]

EVAL = [
    ["eval"],
    ["eval", "missing"],
    ["eval", "not_a_run"],
    ["eval", "game.json"],
    ["eval", "damaged_run"],
    ["eval", "foreign_run"],
    ["eval", "edited_run"],
    ["eval", "run", "--contexts", "0"],
    ["eval", "run", "--contexts", "-4"],
    ["eval", "run", "--contexts", "abc"],
    ["eval", "run", "--seed", "abc"],
    ["eval", "run", "--blocks", "nope"],
    ["eval", "run", "--blocks", ","],
    ["eval", "run", "--polish", "--workers", "-2"],
    ["eval", "run", "--polish", "--workers", "0"],
    ["eval", "run", "--from-json"],
    ["eval", "bad_report.json", "--from-json"],
    ["eval", "garbage.json", "--from-json"],
    ["eval", "run", "--contexts", "10000000000000"],
    ["eval", "run", "--polish", "--workers", "100000"],
    ["eval", "run", "--out", "report.json"],
]

DESIGN = [
    ["design"],
    ["design", "nope", "game.json"],
    ["design", "toy_task", "game.json"],
    ["design", "contract", "missing.json"],
    ["design", "contract", "garbage.json"],
    ["design", "contract", "list.json"],
    ["design", "contract", "deep.json"],
    ["design", "contract", "long_number.json"],
    ["design", "contract", "pipe.json"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--steps", "-1"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--lr", "0"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--eps", "0"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--concept", "nope"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--block", "nope"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--run-dir", "not_a_run"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--run-dir", "run"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--generator", "not_a_run"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--polish", "0"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--polish", "abc"],
    ["design", "contract", str(EXAMPLES / "christmas_tree.json"), "--optimise", "--generator", "run"],
    ["design", "toy_task", "game.json", "--run-dir", "edited_run"],
]

PLUGIN_COMMANDS = [
    ["plugins", "--bogus"],
    ["deb"],
    ["deb", "export", "missing", "out.pt"],
    ["deb", "export", "run", "out.pt"],
    ["deb", "validate", "--weights", "foreign.pt"],
    ["deb", "validate", "--weights", "truncated.pt"],
    ["deb", "validate", "--weights", "missing.pt"],
    ["deb", "validate", "--sizes", "abc"],
    ["deb", "validate", "--sizes", "0"],
    ["deb", "validate", "--games", "0"],
    ["deb", "train", "--steps", "0"],
    ["deb", "train", "--resume", "run"],
    ["deb", "train", "--concept", "ce", "--run-dir", "run"],
    ["deb", "card", "foreign.pt", "--run-dir", "run", "--out", "card.md"],
    ["deb", "validate", "--games", "1", "--sizes", "2", "--json", "missing/rows.json"],
    ["deb", "validate", "--games", "1", "--sizes", "2", "--json", "pipe.json"],
    ["deb", "validate", "--games", "1", "--sizes", "2", "--json", "run/rows.json"],
    ["stackelberg", "--contexts", "0"],
    ["stackelberg", "--contexts", "-1"],
    ["stackelberg", "missing"],
    ["stackelberg", ""],
    ["stackelberg", "--block", ""],
    ["stackelberg", "run"],
    ["stackelberg", "--eps", "0"],
    ["stackelberg", "--optimise-steps", "-1"],
]

CASES = SOLVE + TRAIN + EVAL + DESIGN + PLUGIN_COMMANDS


def _missing(argv: list[str]) -> str | None:
    """Why the command (or the task a design case names) is not available here (``None``: it is)."""
    if argv[0] in ("deb", "stackelberg") and argv[0] not in registry("commands"):
        return f"the command did {argv[0]} is not loaded (its plugin not installed, or left out by DID_LOAD_PLUGINS)"
    if argv[0] == "design" and argv[1:2] == ["contract"] and "contract" not in registry("tasks"):
        return "the task contract is not loaded (did-plugins-contract not installed, or left out by DID_LOAD_PLUGINS)"
    return None


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(a) for a in CASES])
def test_hostile_invocation_is_one_error_line_and_changes_nothing(workdir, monkeypatch, capsys, argv):
    if _missing(argv):
        pytest.skip(_missing(argv))
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 2, (out.out, out.err)
    assert out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err + out.out
    assert snapshot(workdir) == before


VALID = [
    ["solve", "game.json", "--json", "--block-options", "{}"],
    ["solve", "game.json", "--block", "exact_newton", "--block-options", "{max_memory_gb: 1}"],
    ["plugins", "--json"],
]


@pytest.mark.parametrize("argv", VALID, ids=[" ".join(a) for a in VALID])
def test_valid_read_only_invocation_exits_0_and_changes_nothing(workdir, monkeypatch, capsys, argv):
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    if argv[2:4] == ["--block", "exact_newton"] and "exact_newton" not in registry("blocks"):
        pytest.skip("did-plugins-exact-cvx is not installed")
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0 and "did: error" not in out.err, out.err
    assert snapshot(workdir) == before


# Cases that would hang a careless reader (a FIFO) or fail before any plugin matters: the console script itself.
PROCESSES = [
    ["solve", "pipe.json"],
    ["train", "--task", "nope", "--run-dir", "new_run"],
    ["design", "contract", "pipe.json"],
]


@pytest.mark.parametrize("argv", PROCESSES, ids=[" ".join(a) for a in PROCESSES])
def test_console_script_refuses_in_bounded_time(workdir, toy_site, argv):
    if _missing(argv):
        pytest.skip(_missing(argv))
    before = snapshot(workdir)
    done = subprocess.run([sys.executable, "-m", "did_core.cli", *argv], cwd=workdir, capture_output=True, text=True,
                          timeout=60, env=console_env(toy_site))  # the toys are installed there as here
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("did: error:") and done.stderr.count("\n") == 1, done.stderr
    assert snapshot(workdir) == before
