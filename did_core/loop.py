"""The generic optimisation loop shared by mechanism training and block pretraining.

It owns what every long job needs: Adam with linear warm-up then exponential
decay, gradient clipping, progress with ETA, TensorBoard scalars, periodic
metric records, atomic checkpoints every few steps (model, optimiser, schedule,
random state), exact resumption, and a checkpoint on Ctrl-C. What one step does
is the caller's ``step_fn``; :class:`TrainingLoop` does the rest, one method a job
(restore, step, log, checkpoint, stop).

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
from torch.utils.tensorboard import SummaryWriter

from did_core import distributed
from did_core.distributed import PeerError, World
from did_core.report import hardware_description
from did_core.runs import Progress, RunDir, RunDirError

__all__ = ["Schedule", "LoopSettings", "TrainingLoop", "lr_factor", "Interrupted", "RankFailed"]


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
    #: called (in eval mode) with the step count every ``validate_every`` steps and at the last step; its
    #: scalars are recorded as ``val/NAME``.
    validate: Callable[[int], dict[str, float]] | None = None
    label: str = "train"
    extra_state: dict[str, Any] = field(default_factory=dict)
    #: asked at every step boundary; true ends the run there (with a checkpoint), as a deadline does.
    stop_when: Callable[[], bool] | None = None


StepFn = Callable[[int, float], dict[str, float]]


class TrainingLoop:
    """Optimise ``model`` for ``settings.steps`` steps; :meth:`run` returns the metric records.

    ``step_fn(step, progress)`` computes the loss of one step and calls ``backward()`` on it,
    returning named scalars (``"loss"`` among them); the loop clips, steps the optimiser and the
    schedule, logs, checkpoints every ``settings.checkpoint_every`` steps and stops on a signal or
    ``settings.stop_when``: one method each (:meth:`restore`, :meth:`step`, :meth:`log`,
    :meth:`checkpoint`, :meth:`stop`), which :meth:`run` calls in turn.

    With a ``world`` of several ranks (default: the single process), every rank runs a loop on its
    replica of ``model``: ``step_fn`` back-propagates the rank's *share-weighted* loss and returns
    its share-weighted scalars, which the loop sums over the ranks
    (:func:`did_core.distributed.sum_gradients`), so every rank takes the same step. Rank 0 reads
    the checkpoint and sends it to the others, and only rank 0 writes ``run``. An exception in
    ``step_fn`` on any rank stops every rank at the last step boundary, with a checkpoint there:
    the failing rank raises its exception, the others :class:`RankFailed`.

    Example::

        loop = TrainingLoop(RunDir(path), model, step_fn, settings, torch.Generator().manual_seed(0))
        records = loop.run(resume=path.joinpath("checkpoint.pt").exists())
    """

    def __init__(self, run: RunDir, model: nn.Module, step_fn: StepFn, settings: LoopSettings,
                 rng: torch.Generator, world: World | None = None) -> None:
        self.run_dir = run
        self.model = model
        self.step_fn = step_fn
        self.settings = settings
        #: the random stream ``step_fn`` draws from; checkpointed so that a resumed run draws the same batches.
        self.rng = rng
        self.world = world or World()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=settings.schedule.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(settings.schedule, s))
        #: the metric records so far (those a resumed run read from its run directory on rank 0 only).
        self.records: list[dict[str, Any]] = []
        #: steps finished: the model, optimiser, schedule and ``rng`` are the state after them.
        self.completed = 0
        #: whether the state is that of a step boundary (false while a step updates it).
        self.at_boundary = True
        self._last_saved: int | None = None  # the step of the checkpoint on disk, if this loop knows it
        # Training seconds over every session of the run (model cards report it); resumes add to it.
        self._elapsed_before = 0.0
        self._clock = time.monotonic()  # restarted when run() starts training
        self._hardware = hardware_description()
        self._writer: SummaryWriter | None = None
        self._progress: Progress | None = None
        self._signals = _StopRequest(repeat_window=1.0 if distributed.launched() else 0.0)

    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train from the start, or with ``resume`` from the last checkpoint of the run; return the records.

        Raises :class:`Interrupted` on SIGINT or SIGTERM (see :meth:`stop`) and, when another rank's
        step fails, :class:`RankFailed`.
        """
        if resume:
            self.restore()
        self._clock = time.monotonic()
        distributed.broadcast_parameters(self.world, self.model)  # replicas start equal, whatever each rank built
        self._open_outputs()
        previous = self._signals.install()
        try:
            self._train()
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise self._interrupted() from None
        finally:
            _restore_signals(previous)
            self._close_outputs()
        return self.records

    def restore(self) -> None:
        """Load the last checkpoint of the run, if it has one: model, optimiser, schedule, random state,
        step, training seconds and the metric records up to that step (the later ones belong to steps the
        resumed run repeats). Rank 0 reads it and sends it to the other ranks."""
        state = distributed.on_main(self.world, self.run_dir.load_checkpoint)
        if state is None:
            return
        missing = {"optimizer", "scheduler", "rng", "step"} - state.keys()
        if missing:
            raise RunDirError(f"checkpoint in {self.run_dir.path} has no training state "
                              f"({', '.join(sorted(missing))}); it cannot be resumed")
        self.run_dir.load_model(self.model, state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.set_state(state["rng"])
        self.completed = self._last_saved = int(state["step"])
        self.records = [r for r in self.run_dir.metrics() if r["step"] <= self.completed] if self.world.is_main else []
        self._elapsed_before = float(state.get("elapsed_s", 0.0))

    def step(self, step: int) -> dict[str, float]:
        """Take step ``step`` (0-based) on every rank and return its scalars, summed over the ranks.

        The ranks first agree on whether every ``step_fn`` succeeded: if one failed, the step is not
        taken, every rank stops at the boundary before it (rank 0 writes the checkpoint there) and the
        failing rank raises its exception, the others :class:`RankFailed`.
        """
        self.at_boundary = False
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        rng_state = self.rng.get_state()
        try:
            scalars, failure = self.step_fn(step, step / max(self.settings.steps, 1)), None
        except Exception as exc:  # every rank must learn of it before the gradients are summed
            scalars, failure = {}, exc
        failed = distributed.failed_ranks(self.world, failure is not None)
        if failed:
            # The state is the boundary's once the batch is put back in the stream.
            self.at_boundary = True
            self.checkpoint(self.completed, rng_state, together=True)
            if failure is not None:
                raise failure
            raise RankFailed(f"rank {failed[0]} failed at step {step + 1}; every rank stopped at step "
                             f"{self.completed}, where the checkpoint is", self.completed)
        scalars = distributed.sum_gradients(self.world, self.model.parameters(), scalars)
        if self.settings.grad_clip:
            scalars["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip))
        self.optimizer.step()
        scalars["lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return scalars

    def log(self, done: int, scalars: dict[str, float]) -> None:
        """Record the scalars of the step that made ``done`` steps: TensorBoard ``train/NAME`` (rank 0),
        validation when due (added to ``scalars`` as ``val/NAME``), and a metric record every
        ``log_every`` steps, at the last step and whenever there was a validation."""
        settings = self.settings
        self._add_scalars("train/", scalars, done)
        if settings.validate and settings.validate_every and (done % settings.validate_every == 0
                                                              or done == settings.steps):
            self.model.eval()
            validation = {f"val/{name}": value for name, value in settings.validate(done).items()}
            scalars.update(validation)
            self._add_scalars("", validation, done)
        if done % settings.log_every == 0 or done == settings.steps or any(k.startswith("val/") for k in scalars):
            record = {"step": done, **{k: float(v) for k, v in scalars.items()}, "elapsed_s": self.elapsed()}
            self.records.append(record)

    def checkpoint(self, step: int, rng_state: Tensor | None = None, together: bool = False) -> None:
        """Rank 0 writes the state after ``step`` steps (atomically, with the metric records) unless it
        wrote that step already; ``rng_state`` replaces the stream's current state (a step that was not
        taken puts its batch back). With ``together`` every rank waits for the file: no rank exits (and
        has the launcher stop the rest) before it exists."""
        if self.world.is_main and self._last_saved != step:
            self._writer.flush()
            self.run_dir.save_checkpoint({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": self.rng.get_state() if rng_state is None else rng_state,
                "step": step, "elapsed_s": self.elapsed(), "hardware": self._hardware, **self.settings.extra_state,
            })
            self.run_dir.write_metrics(self.records)
        self._last_saved = step
        if together:
            distributed.sync(self.world)

    def stop(self, done: int) -> bool:
        """At the boundary after ``done`` steps, whether the run ends here: on a first SIGINT or SIGTERM
        (on any rank), or when ``settings.stop_when()`` says so (a deadline). Either way every rank
        stops at this step, with a checkpoint; a signal raises :class:`Interrupted`, a deadline returns
        true."""
        stop_when = self.settings.stop_when
        signalled, deadline = distributed.any_flags(
            self.world, self._signals.requested, not self._signals.requested and bool(stop_when and stop_when()))
        if not (signalled or deadline):
            return False
        self.checkpoint(done, together=True)
        if signalled:
            raise Interrupted(done)
        return True

    def elapsed(self) -> float:
        """Training seconds over every session of the run, this one included."""
        return self._elapsed_before + time.monotonic() - self._clock

    def _train(self) -> None:
        """The steps from the last completed one to ``settings.steps``, or to a stop."""
        steps = self.settings.steps
        for step in range(self.completed, steps):
            scalars = self.step(step)
            done = step + 1
            self.log(done, scalars)
            if done % self.settings.checkpoint_every == 0 or done == steps:
                self.checkpoint(done)
            self.completed, self.at_boundary = done, True
            if self._progress is not None:
                self._progress.update(done, {"loss": scalars["loss"]}, force=done == steps)
            if done < steps and self.stop(done):
                break

    def _interrupted(self) -> Interrupted:
        """What a ``KeyboardInterrupt`` outside :meth:`stop` becomes (a second signal, or Ctrl-C off the
        main thread): at a step boundary the loop checkpoints there; within a step the state may be
        half-updated, so the last checkpoint stays as it is. No collective here: the other ranks may be
        anywhere."""
        if self.at_boundary:
            self.checkpoint(self.completed)
        return Interrupted(self.completed if self.at_boundary else None)

    def _add_scalars(self, prefix: str, scalars: dict[str, float], done: int) -> None:
        """TensorBoard points ``PREFIX + NAME`` at step ``done`` (rank 0 only)."""
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(f"{prefix}{name}", value, done)

    def _open_outputs(self) -> None:
        """Rank 0's TensorBoard writer and progress line, from the step the run starts at."""
        if not self.world.is_main:
            return
        start = self.completed
        # Points after the checkpoint belong to steps the resumed run repeats: purge them, keep the rest.
        self._writer = SummaryWriter(str(self.run_dir.file("tb")), purge_step=start + 1 if start else None)
        self._progress = Progress(self.settings.steps, start, label=self.settings.label)

    def _close_outputs(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._progress is not None:
            self._progress.close()


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
