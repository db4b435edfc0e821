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

from did_core.runs import Progress, RunDir

__all__ = ["Schedule", "LoopSettings", "run_loop", "lr_factor"]


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
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            rng.set_state(state["rng"])
            start = int(state["step"])
            records = [r for r in run.metrics() if r["step"] <= start]
    writer = SummaryWriter(str(run.file("tb")), purge_step=start if start else None)

    def checkpoint(step: int) -> None:
        run.save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng.get_state(), "step": step,
            **settings.extra_state,
        })
        run.write_metrics(records)

    progress = Progress(settings.steps, start, label=settings.label)
    completed = start
    previous = _interrupt_on_signals()
    try:
        for step in range(start, settings.steps):
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
            completed = done
            progress.update(done, {"loss": scalars["loss"]}, force=done == settings.steps)
    except KeyboardInterrupt:
        checkpoint(completed)
        writer.close()
        progress.close()
        raise
    finally:
        _restore_signals(previous)
    writer.close()
    progress.close()
    return records


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupt_on_signals() -> dict[int, Any]:
    """Turn SIGINT and SIGTERM into ``KeyboardInterrupt`` (so both save a checkpoint), also when a
    launcher started the process with SIGINT ignored; returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _raise_interrupt)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
