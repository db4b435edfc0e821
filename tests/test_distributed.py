"""Data-parallel training and sharded evaluation: 2 CPU processes (gloo) against one process.

A spawned 2-rank gloo group does the 2-rank half of every comparison and a spawned plain
process (no process group) the 1-rank half, side by side (:func:`distributed_helpers.run_groups`):

* a 2-rank run and a 1-rank run of the same global batch (64) and seed give the same
  loss curve and the same final evaluation;
* a 2-rank run stopped by a signal on one rank resumes on 1 rank, and a 1-rank run on 2
  ranks, both ending where the uninterrupted run ends;
* ``did eval --polish`` sharded over 2 ranks writes the single process's report, bit for bit;
* a step that fails on one rank stops both at the last step boundary, with a checkpoint.

Tolerance of the loss curves: the generator computes in float32 and each rank runs its own
size groups, so terms are summed in another order and rounded differently (float32: 6e-8
relative per operation); Adam carries that through the steps. Measured: 1e-9 after three
steps. The test allows 1e-6 (absolute and relative), float32 rounding with room, and far
below what a mistake would do (summing the ranks' unweighted means doubles the loss).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

import distributed_helpers
from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.distributed import World, chunk_share, share
from did_core.launch import torchrun_command, without_nproc
from did_core.loop import Interrupted, RankFailed
from did_core.train import RESUME_FREE, train

TESTS = Path(__file__).resolve().parent
# Games of 2 or 3 actions per player: each rank runs its share of a batch as its own size groups.
CFG = {"task": "toy_task", "block": "toy_exact", "exact_block": "toy_exact", "steps": 3, "batch_size": 64,
       "warmup_steps": 1, "log_every": 1, "checkpoint_every": 3, "eval_contexts": 16,
       "sampler_options": {"min_actions": 2, "max_actions": 3}, "generator_options": {"width": 8, "depth": 1}}
# 66 held-out contexts are two chunks of the evaluation (64 + 2): one for each rank.
EVAL = ["--contexts", "66", "--polish", "--polish-budget", "4", "--workers", "1"]
TOLERANCE = {"rel": 1e-6, "abs": 1e-6}


@contextmanager
def _training_step_calling(before):
    """``did_core.train.training_step`` calls ``before(n)`` first on its ``n``-th call (its batch drawn)."""
    import did_core.train as trainer

    original, calls = trainer.training_step, [0]

    def step(*args, **kwargs):
        calls[0] += 1
        before(calls[0])
        return original(*args, **kwargs)

    trainer.training_step = step
    try:
        yield
    finally:
        trainer.training_step = original


def _sigint_on(call: int):
    """Ctrl-C to this process while the ``call``-th step runs."""
    return lambda n: os.kill(os.getpid(), signal.SIGINT) if n == call else None


def _cut(cfg, path: Path, signalled: bool) -> None:
    """Train ``cfg`` into ``path`` until a Ctrl-C (on the ranks where ``signalled``) during step 2 stops it."""
    with _training_step_calling(_sigint_on(2) if signalled else lambda n: None):
        with pytest.raises(Interrupted) as stop:
            train(cfg, path)
    assert stop.value.step == 2


def _raise_on(call: int):
    def before(n: int) -> None:
        if n == call:
            raise ValueError("toy failure on this rank")
    return before


def one_rank(rank: int, barrier, root: str) -> None:
    """The 1-rank half, in a plain process: train, be interrupted, then resume the 2-rank half's cut and evaluate."""
    root_path, cfg = Path(root), resolve_train_config(CFG)
    train(cfg, root_path / "full1")
    _cut(cfg, root_path / "cut1", signalled=True)
    for copy in ("eval1", "eval2"):  # the same trained run, evaluated by each half
        shutil.copytree(root_path / "full1", root_path / copy)
    barrier.wait()
    assert main(["train", "--resume", str(root_path / "cut2")]) == 0  # stopped on 2 ranks, finished on 1
    assert main(["eval", str(root_path / "eval1"), *EVAL]) == 0


def _forbid_writing_runs() -> None:
    """Make every way the framework writes a run directory (files, lock, TensorBoard) an error in this process."""
    import did_core.loop
    import did_core.runs

    def refuse(*args, **kwargs):
        raise AssertionError("a rank other than 0 wrote to a run directory")

    did_core.runs.atomic_write_bytes = refuse
    did_core.runs.RunDir.acquire = refuse
    did_core.loop.SummaryWriter = refuse


def two_ranks(rank: int, barrier, root: str) -> None:
    """The 2-rank half, on a gloo group: the same, plus a failing rank; rank 1 never writes a file."""
    root_path, cfg = Path(root), resolve_train_config(CFG)
    if rank == 1:
        _forbid_writing_runs()
    train(cfg, root_path / "full2")
    _cut(cfg, root_path / "cut2", signalled=rank == 0)  # Ctrl-C on rank 0 only stops both
    # A step that fails on rank 1 stops both ranks at the previous boundary, with its checkpoint.
    with _training_step_calling(_raise_on(2) if rank == 1 else lambda n: None):
        with pytest.raises(ValueError if rank == 1 else RankFailed) as failed:
            train(cfg.model_copy(update={"checkpoint_every": 100}), root_path / "failed2")
    assert rank == 1 or failed.value.step == 1
    barrier.wait()
    assert main(["train", "--resume", str(root_path / "cut1")]) == 0  # stopped on 1 rank, finished on 2
    assert main(["eval", str(root_path / "eval2"), *EVAL]) == 0


def _curve(run: Path, name: str) -> list[float]:
    records = json.loads((run / "metrics.json").read_text())
    assert [r["step"] for r in records] == [1, 2, 3]
    return [r[name] for r in records]


def _same_curve(a: Path, b: Path) -> None:
    """The loss and the norm of the (all-reduced) gradient at every step."""
    for name in ("loss", "grad_norm"):
        assert _curve(b, name) == pytest.approx(_curve(a, name), **TOLERANCE), name


def _without(obj, keys):
    """``obj`` without ``keys`` at any depth (what legitimately differs between two reports)."""
    if isinstance(obj, dict):
        return {k: _without(v, keys) for k, v in obj.items() if k not in keys}
    return obj


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 1-rank half on one spawned process and the 2-rank half on two, side by side (3 processes)."""
    root = tmp_path_factory.mktemp("distributed")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # one thread per process on a 2-core machine
        env.setenv("OPENBLAS_NUM_THREADS", "1")
        distributed_helpers.run_groups((1, one_rank, (str(root),)), (2, two_ranks, (str(root),)))
    return root


def test_two_ranks_train_as_one(runs):
    _same_curve(runs / "full1", runs / "full2")
    assert yaml.safe_load((runs / "full1" / "config.yaml").read_text())["world_size"] == 1
    assert yaml.safe_load((runs / "full2" / "config.yaml").read_text())["world_size"] == 2
    one, two = (json.loads((runs / r / "eval.json").read_text()) for r in ("full1", "full2"))
    assert one["toy_exact"]["world_size"] == 1 and two["toy_exact"]["world_size"] == 2
    assert two["toy_exact"]["contexts"] == 16
    for key in ("metric", "baseline", "improved_share"):
        assert two["toy_exact"][key] == pytest.approx(one["toy_exact"][key], **TOLERANCE)
        assert two["toy_exact"]["guarded"][key] == pytest.approx(one["toy_exact"]["guarded"][key], **TOLERANCE)


def test_resume_across_world_sizes(runs):
    for resumed in ("cut1", "cut2"):  # 1 rank -> 2 ranks, 2 ranks -> 1 rank
        _same_curve(runs / "full1", runs / resumed)
        assert torch.load(runs / resumed / "checkpoint.pt", weights_only=True)["step"] == 3
    assert yaml.safe_load((runs / "cut1" / "config.yaml").read_text())["world_size"] == 2
    assert yaml.safe_load((runs / "cut2" / "config.yaml").read_text())["world_size"] == 1


def test_sharded_evaluation_is_the_single_process_report(runs):
    one, two = (json.loads((runs / r / "report.json").read_text()) for r in ("eval1", "eval2"))
    assert one["meta"]["world_size"] == 1 and two["meta"]["world_size"] == 2
    assert two["blocks"]["toy_exact"]["polished"]["under_block"]["contexts"] == 66
    differ = {"world_size", "created", "command", "git_revision"}  # and the folder, the time, the commit
    assert _without(two, differ) == _without(one, differ)  # bit for bit: == on every float


def test_a_failing_rank_stops_every_rank_with_a_checkpoint(runs):
    state = torch.load(runs / "failed2" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 1
    assert [r["step"] for r in json.loads((runs / "failed2" / "metrics.json").read_text())] == [1]
    assert not [p.name for p in (runs / "failed2").iterdir() if p.name.startswith(".checkpoint")]


def test_shares_split_like_tensor_split():
    for n in (1, 5, 64, 70):
        for size in (1, 2, 3, 8):
            parts = torch.tensor_split(torch.arange(n), size)
            for rank in range(size):
                mine = share(n, World(rank, size))
                assert torch.equal(torch.arange(n)[mine], parts[rank])
            chunks = [chunk_share(n, 64, World(rank, size)) for rank in range(size)]
            assert [i for s in chunks for i in range(s.start, s.stop)] == list(range(n))
            assert all(s.start % 64 == 0 or s.start == s.stop for s in chunks)


def test_world_size_is_recorded_not_set(capsys):
    assert "world_size" in RESUME_FREE
    assert main(["train", "--task", "toy_task", "--world-size", "2"]) == 2  # no such flag
    assert "unrecognized arguments: --world-size 2" in capsys.readouterr().err
    assert without_nproc(["--nproc", "2", "--steps", "3", "--nproc=4"]) == ["--steps", "3"]
    command = torchrun_command(["train", "--steps", "3"], 2)
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                           "did_core.cli", "train", "--steps", "3"]


def test_nproc_refuses_what_it_can_check_before_starting(tmp_path, capsys):
    assert main(["train", "--task", "toy_task", "--nproc", "4", "--batch-size", "2",
                 "--run-dir", str(tmp_path / "run")]) == 2
    assert "smaller than --nproc 4" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_did_train_nproc_ctrl_c_stops_every_process_with_one_checkpoint(tmp_path):
    """``did train --nproc 2`` trains on 2 processes through torchrun; Ctrl-C stops both at one step boundary."""
    site = distributed_helpers.toy_site(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "DID_LOAD_PLUGINS": "did_core_test_toys", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "did_core.cli", "train", "--nproc", "2", "--task", "toy_task",
               "--block", "toy_exact", "--exact-block", "toy_exact", "--steps", "100000", "--batch-size", "8",
               "--sampler-options", "{min_actions: 2, max_actions: 2}", "--generator-options", "{width: 4, depth: 1}",
               "--checkpoint-every", "1", "--log-every", "1"]
    # The terminal's Ctrl-C goes to the launcher's process group.
    child = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob("runs/*/checkpoint.pt")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    [run] = tmp_path.glob("runs/*")  # the launcher chose the folder and gave it to every process
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert err.count(f"interrupted: checkpoint saved at step {step}") == 1  # rank 0 alone reports
    assert json.loads((run / "metrics.json").read_text())[-1]["step"] == step
    assert yaml.safe_load((run / "config.yaml").read_text())["world_size"] == 2
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no partial file
