"""Numbers a user types that would exhaust the machine, run for ever or leave processes behind, and names a
command must refuse: each is one ``did: error:`` line with exit 2 before any work, nothing written.

* held-out contexts (``did eval --contexts``, ``did train --eval-contexts``): their memory
  and time estimated from a few contexts, refused over half the machine's memory or a day;
  a training batch (``--batch-size``) by its memory, before it is drawn;
* ``did design --steps`` / ``--polish``: refused when one solve of the instance, timed,
  says they would take over an hour;
* ``--workers`` beyond the cores this process may use: refused; Ctrl-C during the polish
  ends every worker and exits 130 at once;
* ``inf`` and ``nan`` in any float of the training config or a component's options;
* a learned block where an exact block is required; two players of one name;
* a closed standard output (``did ... | head -1``): no message, exit 141.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import toys
from did_core.blocks import capabilities_of
from did_core.cli import main
from did_core.instance_files import InstanceError
from did_core.instance_format import NamedContext
from did_core.options import Options, validate_options
from did_core.plugins import registry
from run_helpers import TINY, console_env, snapshot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HUGE = "10000000000000"  # 1e13 contexts: terabytes, whatever the machine


def _one_error(capsys, *parts: str) -> str:
    out = capsys.readouterr()
    assert out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err + out.out
    assert all(part in out.err for part in parts), out.err
    return out.err


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


# ------------------------------------------------------------------------------------------- held-out contexts

def test_eval_refuses_held_out_contexts_beyond_memory(toy_run, capsys):
    """``did eval --shipped inverse --contexts 10000000`` allocated 22 GB and was killed."""
    before = snapshot(toy_run)
    assert main(["eval", str(toy_run), "--contexts", HUGE]) == 2
    _one_error(capsys, f"{HUGE} held-out contexts with their evaluation would take about", "GiB",
               "half of this machine's memory", "lower --contexts")
    assert snapshot(toy_run) == before


def test_train_refuses_held_out_contexts_beyond_memory_before_the_run_directory(config, tmp_path, capsys):
    """``did train ... --eval-contexts 10000000`` ran past any reasonable time."""
    assert main(["train", "--config", str(config), "--eval-contexts", HUGE, "--run-dir", str(tmp_path / "new")]) == 2
    _one_error(capsys, "lower --eval-contexts")
    assert not (tmp_path / "new").exists()


def test_train_refuses_a_batch_beyond_memory_before_drawing_it(config, tmp_path, capsys):
    """The batch was drawn whole before the block's size guard could refuse it: an allocation failure, reported
    as a bug of the task's sampler (exit 1)."""
    assert main(["train", "--config", str(config), "--batch-size", HUGE, "--run-dir", str(tmp_path / "new")]) == 2
    _one_error(capsys, f"{HUGE} contexts of one batch would take about", "lower --batch-size")
    assert not (tmp_path / "new").exists()


def test_an_evaluation_estimated_over_its_time_bound_is_refused(toy_run, capsys, monkeypatch):
    monkeypatch.setattr("did_core.evaluate.MAX_EVALUATION_SECONDS", 1e-6)
    before = snapshot(toy_run)
    assert main(["eval", str(toy_run), "--contexts", "50"]) == 2
    _one_error(capsys, "evaluating 50 held-out contexts under", "ms a context", "lower --contexts")
    assert snapshot(toy_run) == before


def test_legitimate_sizes_pass_the_bounds(toy_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    assert main(["eval", str(run), "--contexts", "64"]) == 0
    assert json.loads((run / "report.json").read_text())["meta"]["contexts"] == 64


# ------------------------------------------------------------------------------------------------- did design

def _inverse_loaded() -> None:
    if "inverse" not in registry("tasks"):
        pytest.skip("the task inverse is not loaded (did-plugins-inverse not installed, or left out by "
                    "DID_LOAD_PLUGINS)")


@pytest.mark.parametrize("flags, flag", [(["--optimise", "--steps", "100000000000000000000"], "--steps"),
                                         (["--polish", "100000000000000000000"], "--polish")])
def test_design_refuses_work_estimated_over_an_hour(capsys, flags, flag):
    """``did design ... --optimise --steps 100000000000000000000`` ran for ever."""
    _inverse_loaded()
    assert main(["design", "inverse", str(EXAMPLES / "inverse_target.json"), *flags]) == 2
    _one_error(capsys, f"{flag} 100000000000000000000 would take at least about", "years", "over the bound of 1.0 h",
               f"give {flag}")



@pytest.mark.parametrize("task, instance, steps", [
    ("mu_spm", "messages/mu_spm_paper.json", "1000000000"),        # 32 starts a step: ran 32 times the estimate
    ("contract", "christmas_tree.json", "100000000000"),          # the generator's answer refined: was not checked
])
def test_design_counts_every_start_of_a_multi_start_search(capsys, task, instance, steps):
    """A step of a multi-start search solves all its starts; refining a shipped generator's answer is a search too.
    Both are timed as what they run, and refused over the bound before they start."""
    if task not in registry("tasks"):
        pytest.skip(f"the task {task} is not loaded")
    assert main(["design", task, str(EXAMPLES / instance), "--steps", steps]) == 2
    _one_error(capsys, f"--steps {steps} would take at least about", "solves together", "over the bound of 1.0 h")

# ---------------------------------------------------------------------------------------- the polish's workers

def test_more_workers_than_cores_is_refused(toy_run, capsys):
    before = snapshot(toy_run)
    assert main(["eval", str(toy_run), "--contexts", "4", "--polish", "--workers", "100000"]) == 2
    _one_error(capsys, "--workers 100000 is more than the", "refused (not capped)")
    assert snapshot(toy_run) == before


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: psutil is not a dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # it ended meanwhile
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
@pytest.mark.parametrize("to", ["process", "group"])
def test_ctrl_c_during_the_polish_ends_every_worker_and_exits_130(toy_run, toy_site, tmp_path, to):
    """Ctrl-C during ``did eval --polish --workers N``: worker tracebacks, the main process hung 13 minutes
    (it waited for every queued context), six workers were left running. ``group``: Ctrl-C at a terminal, which
    signals every process of the group; ``process``: SIGINT to ``did`` alone."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    proc = subprocess.Popen([sys.executable, "-m", "did_core.cli", "eval", str(run), "--contexts", "256", "--polish",
                             "--polish-budget", "100000", "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=console_env(toy_site), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) >= 2 and proc.poll() is None, "the polish did not start its workers"
        time.sleep(0.5)  # the workers are polishing
        sent = time.monotonic()
        (os.killpg if to == "group" else os.kill)(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and time.monotonic() - sent < 10, (proc.returncode, err)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in err and "interrupted" in err, err
    time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)]
    assert not (run / "report.json").exists() and not list(run.glob(".report*"))


# ----------------------------------------------------------------------------------------- infinite numbers

@pytest.mark.parametrize("flags", [["--lr", "inf"], ["--lr", ".inf"], ["--eps", "nan"], ["--grad-clip", "inf"],
                                   ["--final-lr-fraction", ".nan"], ["--loss-options", "{weight: .inf}"]])
def test_train_refuses_infinite_numbers_before_the_run_directory(config, tmp_path, capsys, flags):
    """``did train --lr inf`` created the run and failed at step 2 ("games contain NaN or infinite payoffs"),
    leaving config, checkpoint and metrics."""
    assert main(["train", "--config", str(config), *flags, "--run-dir", str(tmp_path / "new")]) == 2
    _one_error(capsys, "finite number")
    assert not (tmp_path / "new").exists()


def test_options_refuse_inf_and_nan_by_default():
    class Rate(Options):
        rate: float = 1.0

    for bad in (float("inf"), float("-inf"), float("nan"), "inf"):
        with pytest.raises(ValueError, match="rate: Input should be a finite number"):
            validate_options(Rate, "a test", {"rate": bad})


# ------------------------------------------------------------------------------------------------ exact blocks

def _learned_block() -> str:
    learned = [e.name for e in registry("blocks") if not capabilities_of(e.value).exact]
    if not learned:
        pytest.skip("no learned block is loaded (did-plugins-deb-marris, did-plugins-no-regret)")
    return learned[0]


def test_a_learned_block_is_refused_as_the_exact_block(config, toy_run, tmp_path, capsys):
    """``--exact-block deb_marris`` was accepted as the guard's exact block."""
    learned = _learned_block()
    assert main(["train", "--config", str(config), "--exact-block", learned, "--run-dir", str(tmp_path / "new")]) == 2
    _one_error(capsys, f"'{learned}' is not an exact block", "exact blocks installed for cce:", toys.TOY_BLOCK)
    assert not (tmp_path / "new").exists()


def test_a_learned_block_is_refused_as_design_block(capsys):
    _inverse_loaded()
    learned = _learned_block()
    assert main(["design", "inverse", str(EXAMPLES / "inverse_target.json"), "--block", learned]) == 2
    _one_error(capsys, f"--block '{learned}' is not an exact block")


# ------------------------------------------------------------------------------------------------- names

def test_two_players_of_one_name_are_refused_in_every_format():
    with pytest.raises(InstanceError, match="players must have distinct names: 'Ann' is given twice"):
        NamedContext({}, ["Ann", "Bob", "Ann"], [["a"], ["b"], ["c"]])
    with pytest.raises(InstanceError, match="the actions of 'Ann' must have distinct names"):
        NamedContext({}, ["Ann"], [["up", "up"]])


def test_a_commitment_leader_named_as_a_follower_is_refused(tmp_path, capsys):
    """The leader's and the followers' names come from two fields; two players could share a name."""
    if "commitment" not in registry("tasks"):
        pytest.skip("the task commitment is not loaded (did-plugins-stackelberg not installed, or left out by "
                    "DID_LOAD_PLUGINS)")
    data = json.loads((EXAMPLES / "commitment_game2.json").read_text())
    data["followers"] = [data["leader"]]
    (tmp_path / "game.json").write_text(json.dumps(data))
    assert main(["design", "commitment", str(tmp_path / "game.json")]) == 2
    _one_error(capsys, str(tmp_path / "game.json"), "is also a follower's")


# --------------------------------------------------------------------------------------------- a closed pipe

def test_a_closed_standard_output_ends_quietly_with_141(toy_site):
    """``did design ... | head -1`` ended with ``did: error: [Errno 32] Broken pipe``."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before did writes
    try:
        done = subprocess.run([sys.executable, "-m", "did_core.cli", "plugins"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, env=console_env(toy_site))
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
