"""The generic trainer: run directory, exact resumption, config validation, a third-party task."""

import json
from pathlib import Path

import pytest
import torch
import toys
import yaml

from did_core.cli import main
from did_core.config import ConfigError, resolve_train_config
from did_core.loop import Schedule, lr_factor
from did_core.plugins import create, get_concept, registry
from did_core.train import train

# The toy task (tests/toys.py); the block is the preferred installed exact block (toy_exact without plugins).
TINY = {"task": "toy_task", "steps": 6, "batch_size": 4, "eval_contexts": 6,
        "checkpoint_every": 3, "log_every": 1, "warmup_steps": 2,
        "sampler_options": {"min_actions": 2, "max_actions": 2}, "generator_options": {"width": 8, "depth": 1}}


def test_schedule_warms_up_then_decays():
    s = Schedule(lr=1.0, warmup_steps=4, total_steps=14, final_fraction=0.1)
    assert [round(lr_factor(s, i), 3) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(s, 14) == pytest.approx(0.1)
    assert lr_factor(s, 9) == pytest.approx(0.1**0.5)


def test_run_directory_contents_and_eval(tmp_path):
    cfg = resolve_train_config(TINY)
    result = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert {"config.yaml", "checkpoint.pt", "metrics.json", "eval.json", "tb"} <= {p.name for p in run.iterdir()}
    assert yaml.safe_load((run / "config.yaml").read_text())["steps"] == 6
    assert list(torch.load(run / "checkpoint.pt", weights_only=True)) >= ["model"]
    evaluation = json.loads((run / "eval.json").read_text())
    assert set(evaluation[cfg.exact_block]) >= {"metric", "baseline", "improved_share", "contexts"}
    assert evaluation == {name: block.as_dict() for name, block in result.items()}
    assert evaluation[cfg.exact_block]["contexts"] == 6
    # The baseline of the toy task is -P(0, 0) of the untouched games: check it independently.
    held_out = toys.ToySampler(min_actions=2, max_actions=2).sample(6, torch.Generator().manual_seed(cfg.eval_seed))
    eq = create("blocks", cfg.exact_block)(held_out["base"].double(), held_out["mask"],
                                           concept=get_concept(cfg.concept),
                                           eps=cfg.eps)
    assert -1.0 < evaluation[cfg.exact_block]["baseline"] < 0.0
    assert evaluation[cfg.exact_block]["baseline"] == pytest.approx(-float(eq.sigma[:, 0, 0].mean()), abs=1e-9)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = resolve_train_config(TINY)
    train(cfg, tmp_path / "full")
    # Ctrl-C after the first checkpoint (step 3), then resume to step 6.
    _train_until(cfg, tmp_path / "cut", stop_after=3)
    train(cfg, tmp_path / "cut", resume=True)
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [r["step"] for r in resumed] == [r["step"] for r in full]
    for a, b in zip(full, resumed):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-9)


def _train_until(cfg, path: Path, stop_after: int) -> None:
    """Run ``cfg`` but raise KeyboardInterrupt after ``stop_after`` steps, as Ctrl-C would."""
    import did_core.loop as loop

    original = loop.Progress.update

    def interrupt(self, step, scalars, force=False):
        original(self, step, scalars, force)
        if step == stop_after:
            raise KeyboardInterrupt

    loop.Progress.update = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, path)
    finally:
        loop.Progress.update = original


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"task": "toy_task", "stepz": 3}, "stepz"),
        ({"task": "toy_task", "steps": -1}, "steps"),
        ({"task": "toy_task", "lr": "fast"}, "lr"),
        ({"task": "nope"}, "unknown task 'nope'; known:"),
        ({"task": "toy_task", "sampler": "nope"}, "unknown sampler 'nope'; known:"),
        ({"task": "toy_task", "concept": "nash"}, "unknown concept 'nash'; known:"),
        ({"task": "toy_task", "profile": "huge"}, "unknown profile"),
        ({"task": "toy_task", "device": "tpu"}, "device"),
    ],
)
def test_invalid_configs_are_rejected(flags, message):
    with pytest.raises((ConfigError, LookupError), match=message):
        resolve_train_config(flags)


def test_cli_rejects_bad_options_without_writing(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("task: toy_task\nsampler_options: {max_actionz: 3}\n")
    code = main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "max_actionz" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--losing-weight", "0.5"], "--losing-weight 0.5: objective ToyObjective has no per-context loss"),
        (["--imitation-contexts", "8", "--imitation-steps", "2"], "task toy_task has no per-instance optimiser"),
        (["--imitation-contexts", "8"], "give both"),
        (["--imitation-steps", "2"], "give both"),
        (["--imitation-contexts", "8", "--imitation-steps", "3"], "--imitation-steps 3 is more than --steps 2"),
        (["--losing-weight", "1.5"], "losing_weight"),
    ],
)
def test_training_options_a_task_cannot_honour_are_refused_without_writing(tmp_path, capsys, flags, message):
    code = main(["train", "--task", "toy_task", "--steps", "2", "--run-dir", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_third_party_task_trains_without_core_changes(tmp_path):
    """A task unknown to this repo, registered through a (fake) entry point, trains with the same command."""
    import types

    from did_core.hookspecs import hookimpl
    from did_core import tasks
    from did_core.nn.generators import PayoffGenerator
    from did_core.tasks import ContextSampler, DesignObjective, Task

    class Sampler(ContextSampler):
        def sample(self, batch, generator):
            return {"base": torch.randn(batch, 2, 2, 2, generator=generator)}

        def payoff_features(self, context):
            return context["base"].unsqueeze(1), torch.ones(context["base"].shape[0], 2, 2, dtype=torch.bool)

    class Objective(DesignObjective):
        """Make joint action (0, 0) likely by adding a bonus game."""

        class Options(tasks.Options):
            weight: float = 0.01

        def induce(self, context, x):
            return context["base"] + x, torch.ones(x.shape[0], 2, 2, dtype=torch.bool)

        def value(self, context, x, eq):
            return -eq.sigma[:, 0, 0]

        def loss(self, context, x, eq, progress):
            return self.value(context, x, eq).mean() + self.options.weight * x.pow(2).mean(), {}

        def baseline_intervention(self, context):
            return torch.zeros_like(context["base"])

    module = types.ModuleType("coord_task")
    task = Task(sampler=Sampler, objective=Objective, generator=PayoffGenerator,
                train_profiles={"quick": {"steps": 4, "batch_size": 4}})
    module.did_register_tasks = hookimpl(lambda register: register.add("coord", task))
    # A fake entry point ``coord`` of the distribution did-plugins-coord (restored after).
    with toys.installed(module, "coord", "did-plugins-coord") as state:
        assert state.registries["tasks"].get("coord").provider == "did-plugins-coord"
        code = main(["train", "--task", "coord", "--eval-contexts", "4",
                     "--generator-options", "{width: 4, depth: 1}", "--run-dir", str(tmp_path / "run")])
        assert code == 0
        block = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["block"]
        assert json.loads((tmp_path / "run" / "eval.json").read_text())[block]["contexts"] == 4
    assert "coord" not in registry("tasks")


def test_linear_ramp():
    from did_core.tasks import linear_ramp

    assert linear_ramp(0.0, 0.1, 1.0, 0.5) == pytest.approx(0.1)
    assert linear_ramp(0.25, 0.1, 1.0, 0.5) == pytest.approx(0.55)
    assert linear_ramp(0.9, 0.1, 1.0, 0.5) == pytest.approx(1.0)
    assert linear_ramp(0.3, 0.0, 2.0, 0.0) == pytest.approx(2.0)


def test_ramped_penalty_ramps_to_lam_or_to_a_fixed_final_weight():
    from typing import ClassVar

    from did_core.tasks import RampedPenalty

    options = RampedPenalty(lam=2.0, lam_start=0.4, ramp=0.5)
    assert [options.weight(p) for p in (0.0, 0.25, 0.9)] == pytest.approx([0.4, 1.2, 2.0])

    class Fixed(RampedPenalty):
        lam: ClassVar[float] = 1.0

    assert set(Fixed.model_fields) == {"lam_start", "ramp"}
    assert Fixed(lam_start=0.2).weight(0.25) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="lam"):
        Fixed(lam=2.0)


def test_profile_helpers_state_only_what_differs():
    from did_core.tasks import PAPER_TRAINING, QUICK_TRAINING, paper_profile, quick_profile

    paper = paper_profile(batch_size=256)
    assert list(paper) == list(PAPER_TRAINING) and paper["batch_size"] == 256 and PAPER_TRAINING["batch_size"] == 64
    assert quick_profile(threads=1) == {**QUICK_TRAINING, "threads": 1}
    with pytest.raises(TypeError):
        PAPER_TRAINING["steps"] = 1  # the shared settings cannot be changed by one task


def test_sigterm_saves_a_checkpoint(tmp_path):
    """A real SIGTERM (as a job scheduler sends) stops the run with a checkpoint at the last finished step."""
    import os
    import signal

    import did_core.loop as loop

    cfg = resolve_train_config({**TINY, "checkpoint_every": 1000})
    original = loop.Progress.update

    def terminate(self, step, scalars, force=False):
        original(self, step, scalars, force)
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    loop.Progress.update = terminate
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "run")
    finally:
        loop.Progress.update = original
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _tensorboard_steps(folder: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_signal_mid_step_stops_at_the_boundary_and_resume_is_exact(tmp_path, monkeypatch):
    """SIGINT while a step runs (between sampling and the update) finishes that step, checkpoints at the
    boundary (not on the periodic schedule), and the resumed run repeats the uninterrupted one bitwise,
    with every TensorBoard point present once."""
    import os
    import signal

    import did_core.train as trainer

    cfg = resolve_train_config({**TINY, "checkpoint_every": 1000})
    train(cfg, tmp_path / "full")
    original = trainer.training_step
    calls = {"n": 0}

    def interrupted_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the batch of step 4 is already drawn
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt) as stop:
        train(cfg, tmp_path / "cut")
    assert stop.value.step == 4
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 4
    monkeypatch.setattr(trainer, "training_step", original)
    train(cfg, tmp_path / "cut", resume=True)
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [(r["step"], r["loss"]) for r in resumed] == [(r["step"], r["loss"]) for r in full]
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _tensorboard_steps(tmp_path / "cut" / "tb", "train/loss") == list(range(1, 7))
    assert json.loads((tmp_path / "cut" / "eval.json").read_text()) == json.loads(
        (tmp_path / "full" / "eval.json").read_text())


def test_cli_reports_the_interrupt_checkpoint(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import did_core.train as trainer

    original = trainer.training_step

    def interrupted_step(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_step", interrupted_step)
    flags = ["--task", "toy_task", "--steps", "5", "--batch-size", "4",
             "--sampler-options", "{min_actions: 2, max_actions: 2}", "--generator-options", "{width: 8, depth: 1}",
             "--run-dir", str(tmp_path / "run")]
    assert main(["train", *flags]) == 130
    assert "checkpoint saved at step 1" in capsys.readouterr().err


_KILLED_RUN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import toys
import did_core.train as trainer
from did_core.config import resolve_train_config

original = trainer.training_step


def slow_step(*args, **kwargs):
    out = original(*args, **kwargs)
    time.sleep(0.2)  # time for the parent to kill between any two steps
    return out


trainer.training_step = slow_step
with toys.toy_plugins():
    trainer.train(resolve_train_config(json.loads(sys.argv[1])), Path(sys.argv[2]))
"""


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    """SIGKILL (nothing runs after it) after the periodic checkpoint of step 2 and past it: the resume restarts
    from that checkpoint and ends with the uninterrupted run's losses, weights and eval.json, every TensorBoard
    point once (the points written after the checkpoint are purged) and one metrics record per step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    settings = {**TINY, "steps": 6, "checkpoint_every": 2}
    cfg = resolve_train_config(settings)
    train(cfg, tmp_path / "full")
    cut = tmp_path / "cut"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, json.dumps(settings), str(cut),
                              str(Path(__file__).parent)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            metrics = cut / "metrics.json"
            steps = [r["step"] for r in json.loads(metrics.read_text())] if metrics.is_file() else []
            if steps and max(steps) >= 3:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["step"] in (2, 4)
    train(cfg, cut, resume=True)
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((cut / "metrics.json").read_text())
    assert [(r["step"], r["loss"]) for r in resumed] == [(r["step"], r["loss"]) for r in full]
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(cut / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _tensorboard_steps(cut / "tb", "train/loss") == list(range(1, 7))
    assert json.loads((cut / "eval.json").read_text()) == json.loads((tmp_path / "full" / "eval.json").read_text())
