"""The generic optimisation loop shared by mechanism training and block pretraining.

It owns what every long job needs: Adam with linear warm-up then exponential
decay, gradient clipping, progress with ETA, TensorBoard scalars, periodic
metric records, atomic checkpoints every few steps (model, optimiser, schedule,
random state), exact resumption, and a checkpoint on Ctrl-C. What one step does
is the caller's ``step_fn``.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from did_core.runs import Progress, RunDir, RunDirError

__all__ = ["Schedule", "LoopSettings", "run_loop", "lr_factor", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """The loop stopped on Ctrl-C or SIGTERM; ``step`` is the step of the checkpoint it wrote, or ``None``.

    A first signal is honoured at the next step boundary, where the checkpoint
    (weights, optimiser, schedule, random state) is exactly the state an
    uninterrupted run has there, so a resumed run repeats it. A second signal
    stops at once without writing one (the last periodic checkpoint stays).
    """

    def __init__(self, step: int | None) -> None:
        super().__init__(step)
        self.step = step


@dataclass(frozen=True)
class Schedule:
    """Learning rate: linear warm-up over ``warmup_steps``, then exponential decay to ``final_fraction``."""

    lr: float
    warmup_steps: int
    total_steps: int
    final_fraction: float


def lr_factor(schedule: Schedule, step: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    decay_steps = max(schedule.total_steps - schedule.warmup_steps, 1)
    fraction = min((step - schedule.warmup_steps) / decay_steps, 1.0)
    return math.exp(math.log(schedule.final_fraction) * fraction)


@dataclass
class LoopSettings:
    """How the loop runs and records."""

    steps: int
    schedule: Schedule
    grad_clip: float | None = 1.0
    log_every: int = 10
    checkpoint_every: int = 50
    validate_every: int | None = None
    label: str = "train"
    extra_state: dict[str, Any] = field(default_factory=dict)
    #: asked at every step boundary; true ends the run there (with a checkpoint), as a deadline does.
    stop_when: Callable[[], bool] | None = None


StepFn = Callable[[int, float], dict[str, float]]


def run_loop(
    run: RunDir,
    model: nn.Module,
    step_fn: StepFn,
    settings: LoopSettings,
    rng: torch.Generator,
    validate_fn: Callable[[int], dict[str, float]] | None = None,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Optimise ``model`` for ``settings.steps`` steps; return the metric records.

    ``step_fn(step, progress)`` computes the loss of one step and calls
    ``backward()`` on it, returning named scalars (``"loss"`` among them); the
    loop clips, steps the optimiser and the schedule. With ``resume`` it restores
    the last checkpoint of ``run`` and continues from there.
    """
    from torch.utils.tensorboard import SummaryWriter

    optimizer = torch.optim.Adam(model.parameters(), lr=settings.schedule.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(settings.schedule, s))
    start, records = 0, []
    if resume:
        state = run.load_checkpoint()
        if state is not None:
            missing = {"optimizer", "scheduler", "rng", "step"} - state.keys()
            if missing:
                raise RunDirError(f"checkpoint in {run.path} has no training state ({', '.join(sorted(missing))}); "
                                  f"it cannot be resumed")
            try:
                model.load_state_dict(state["model"])
            except RuntimeError as exc:
                raise RunDirError(f"checkpoint in {run.path} does not fit this model: "
                                  f"{str(exc).splitlines()[0]}") from None
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            rng.set_state(state["rng"])
            start = int(state["step"])
            records = [r for r in run.metrics() if r["step"] <= start]
    # Points after the checkpoint belong to steps the resumed run repeats: purge them, keep the rest.
    writer = SummaryWriter(str(run.file("tb")), purge_step=start + 1 if start else None)

    def checkpoint(step: int) -> None:
        writer.flush()
        run.save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng.get_state(), "step": step,
            **settings.extra_state,
        })
        run.write_metrics(records)

    progress = Progress(settings.steps, start, label=settings.label)
    completed, at_boundary = start, True
    stop = _StopRequest()
    previous = stop.install()
    try:
        for step in range(start, settings.steps):
            at_boundary = False
            model.train()
            optimizer.zero_grad(set_to_none=True)
            scalars = step_fn(step, step / max(settings.steps, 1))
            if settings.grad_clip:
                scalars["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip))
            optimizer.step()
            scalars["lr"] = scheduler.get_last_lr()[0]
            scheduler.step()
            done = step + 1
            for name, value in scalars.items():
                writer.add_scalar(f"train/{name}", value, done)
            if settings.validate_every and validate_fn and (done % settings.validate_every == 0 or done == settings.steps):
                model.eval()
                for name, value in validate_fn(done).items():
                    scalars[f"val/{name}"] = value
                    writer.add_scalar(f"val/{name}", value, done)
            if done % settings.log_every == 0 or done == settings.steps or any(k.startswith("val/") for k in scalars):
                records.append({"step": done, **{k: float(v) for k, v in scalars.items()}})
            if done % settings.checkpoint_every == 0 or done == settings.steps:
                checkpoint(done)
            completed, at_boundary = done, True
            progress.update(done, {"loss": scalars["loss"]}, force=done == settings.steps)
            if done < settings.steps and (stop.requested or (settings.stop_when and settings.stop_when())):
                if done % settings.checkpoint_every:
                    checkpoint(done)
                if stop.requested:
                    raise Interrupted(done)
                break
    except Interrupted:
        raise
    except KeyboardInterrupt:
        # Raised outside a step boundary (a second signal, or Ctrl-C off the main thread): the state
        # may be half-updated, so the last checkpoint stays as it is.
        if at_boundary:
            checkpoint(completed)
        raise Interrupted(completed if at_boundary else None) from None
    finally:
        _restore_signals(previous)
        writer.close()
        progress.close()
    return records


class _StopRequest:
    """SIGINT and SIGTERM handlers: the first asks the loop to stop at the next step boundary,
    the second raises ``KeyboardInterrupt`` at once (also when a launcher started the process
    with SIGINT ignored)."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt(f"signal {signum}")
        self.requested = True

    def install(self) -> dict[int, Any]:
        """Install the handlers (main thread only); return the previous ones."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
