"""The generic optimisation loop shared by mechanism training and block pretraining.

It owns what every long job needs: Adam with linear warm-up then exponential
decay, gradient clipping, progress with ETA, TensorBoard scalars, periodic
metric records, atomic checkpoints every few steps (model, optimiser, schedule,
random state), exact resumption, and a checkpoint on Ctrl-C. What one step does
is the caller's ``step_fn``.

Given a :class:`did_core.distributed.World` of several ranks, the loop is data
parallel: it sums the gradients and scalars of the ranks' ``step_fn`` after
every step, and the ranks agree every step on whether to go on, so a signal or a
failure on any rank stops all of them at the same step boundary. Only rank 0
reads and writes ``run`` and shows progress.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from did_core import distributed
from did_core.distributed import PeerError, World
from did_core.report import hardware_description
from did_core.runs import Progress, RunDir, RunDirError

__all__ = ["Schedule", "LoopSettings", "run_loop", "lr_factor", "Interrupted", "RankFailed"]


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


class RankFailed(PeerError):
    """Another rank's step failed; ``step`` is the step of the checkpoint all ranks stopped at (rank 0 wrote it)."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message, report=True)
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
    world: World | None = None,
) -> list[dict[str, Any]]:
    """Optimise ``model`` for ``settings.steps`` steps; return the metric records.

    ``step_fn(step, progress)`` computes the loss of one step and calls
    ``backward()`` on it, returning named scalars (``"loss"`` among them); the
    loop clips, steps the optimiser and the schedule. With ``resume`` it restores
    the last checkpoint of ``run`` and continues from there.

    With a ``world`` of several ranks (default: the single process), every rank
    runs this loop on its replica of ``model``: ``step_fn`` back-propagates the
    rank's *share-weighted* loss and returns its share-weighted scalars, which the
    loop sums over the ranks (:func:`did_core.distributed.sum_gradients`), so
    every rank takes the same step. Rank 0 reads the checkpoint and sends it to
    the others. An exception in ``step_fn`` on any rank stops every rank at the
    last step boundary, with a checkpoint there: the failing rank raises its
    exception, the others :class:`RankFailed`.
    """
    from torch.utils.tensorboard import SummaryWriter

    world = world or World()
    main = world.is_main
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.schedule.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(settings.schedule, s))
    start, records = 0, []
    state = distributed.on_main(world, run.load_checkpoint) if resume else None
    if state is not None:
        missing = {"optimizer", "scheduler", "rng", "step"} - state.keys()
        if missing:
            raise RunDirError(f"checkpoint in {run.path} has no training state ({', '.join(sorted(missing))}); "
                              f"it cannot be resumed")
        run.load_model(model, state)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.set_state(state["rng"])
        start = int(state["step"])
        records = [r for r in run.metrics() if r["step"] <= start] if main else []
    # Training seconds over every session of the run (model cards report it); resumes add to it.
    elapsed_before, clock = float(state.get("elapsed_s", 0.0)) if state is not None else 0.0, time.monotonic()

    hardware = hardware_description()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - clock

    distributed.broadcast_parameters(world, model)  # replicas start equal, whatever each rank built
    # Points after the checkpoint belong to steps the resumed run repeats: purge them, keep the rest.
    writer = SummaryWriter(str(run.file("tb")), purge_step=start + 1 if start else None) if main else None
    last_saved = start if state is not None else None

    def checkpoint(step: int, rng_state: Tensor | None = None, together: bool = False) -> None:
        """Rank 0 writes the state after ``step`` steps; ``together``: every rank waits for it."""
        nonlocal last_saved
        if main and last_saved != step:
            writer.flush()
            run.save_checkpoint({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng.get_state() if rng_state is None else rng_state,
                "step": step, "elapsed_s": elapsed(), "hardware": hardware, **settings.extra_state,
            })
            run.write_metrics(records)
        last_saved = step
        if together:
            distributed.sync(world)  # no rank exits (and has the launcher stop the rest) before the file exists

    progress = Progress(settings.steps, start, label=settings.label) if main else None
    completed, at_boundary = start, True
    stop = _StopRequest(repeat_window=1.0 if distributed.launched() else 0.0)
    previous = stop.install()
    try:
        for step in range(start, settings.steps):
            at_boundary = False
            model.train()
            optimizer.zero_grad(set_to_none=True)
            rng_state = rng.get_state()
            try:
                scalars, failure = step_fn(step, step / max(settings.steps, 1)), None
            except Exception as exc:  # every rank must learn of it before the gradients are summed
                scalars, failure = {}, exc
            failed = distributed.failed_ranks(world, failure is not None)
            if failed:
                # The step is not taken: the state is the boundary's once the batch is put back in the stream.
                at_boundary = True
                checkpoint(completed, rng_state, together=True)
                if failure is not None:
                    raise failure
                raise RankFailed(f"rank {failed[0]} failed at step {step + 1}; every rank stopped at step "
                                 f"{completed}, where the checkpoint is", completed)
            scalars = distributed.sum_gradients(world, model.parameters(), scalars)
            if settings.grad_clip:
                scalars["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip))
            optimizer.step()
            scalars["lr"] = scheduler.get_last_lr()[0]
            scheduler.step()
            done = step + 1
            if main:
                for name, value in scalars.items():
                    writer.add_scalar(f"train/{name}", value, done)
            if settings.validate_every and validate_fn and (done % settings.validate_every == 0 or done == settings.steps):
                model.eval()
                for name, value in validate_fn(done).items():
                    scalars[f"val/{name}"] = value
                    if main:
                        writer.add_scalar(f"val/{name}", value, done)
            if done % settings.log_every == 0 or done == settings.steps or any(k.startswith("val/") for k in scalars):
                records.append({"step": done, **{k: float(v) for k, v in scalars.items()}, "elapsed_s": elapsed()})
            if done % settings.checkpoint_every == 0 or done == settings.steps:
                checkpoint(done)
            completed, at_boundary = done, True
            if progress is not None:
                progress.update(done, {"loss": scalars["loss"]}, force=done == settings.steps)
            if done < settings.steps:
                signalled, deadline = distributed.any_flags(
                    world, stop.requested, not stop.requested and bool(settings.stop_when and settings.stop_when()))
                if signalled or deadline:
                    checkpoint(done, together=True)
                    if signalled:
                        raise Interrupted(done)
                    break
    except Interrupted:
        raise
    except KeyboardInterrupt:
        # Raised outside a step boundary (a second signal, or Ctrl-C off the main thread): the state
        # may be half-updated, so the last checkpoint stays as it is. No collective here: the other
        # ranks may be anywhere.
        if at_boundary:
            checkpoint(completed)
        raise Interrupted(completed if at_boundary else None) from None
    finally:
        _restore_signals(previous)
        if writer is not None:
            writer.close()
        if progress is not None:
            progress.close()
    return records


class _StopRequest:
    """SIGINT and SIGTERM handlers: the first asks the loop to stop at the next step boundary,
    the second raises ``KeyboardInterrupt`` at once (also when a launcher started the process
    with SIGINT ignored).

    A signal within ``repeat_window`` seconds of the first counts as the same request: under
    torchrun a worker can get one Ctrl-C twice (from the terminal or the job scheduler, and
    forwarded by the launcher)."""

    def __init__(self, repeat_window: float = 0.0) -> None:
        self.requested = False
        self.repeat_window = repeat_window
        self._first = 0.0

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.requested:
            if now - self._first < self.repeat_window:
                return
            raise KeyboardInterrupt(f"signal {signum}")
        self.requested, self._first = True, now

    def install(self) -> dict[int, Any]:
        """Install the handlers (main thread only); return the previous ones."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
