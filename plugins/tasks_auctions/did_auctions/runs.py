"""A mechanism run's folder (:func:`did_core.mechanism_task.start_run`): its settings, the loop's checkpoint and
the reports.

Shared by the menu and affine-maximizer commands: training goes through
``did_core.loop.TrainingLoop`` (progress with ETA, TensorBoard, atomic checkpoints,
exact resumption) in a ``did_core.runs.RunDir``; ``config.json`` holds
``{"task": NAME, "settings": {...}}``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from did_core.loop import Interrupted, LoopSettings, Schedule, TrainingLoop
from did_core.files import shown
from did_core.mechanism_task import RUN_CONFIG, read_run_config
from did_core.runs import RunDir, RunDirError, atomic_write_text

__all__ = ["read_settings", "check_fields", "train_in", "load_trained", "write_report"]

T = TypeVar("T")


def read_settings(path: str, task: str, kind: type[T]) -> tuple[RunDir, T]:
    """The run folder ``path`` of task ``task`` and its settings, a ``kind`` dataclass (a one-line
    ``RunDirError`` when the folder is not such a run, or its config.json is damaged)."""
    config = read_run_config(path, task)
    if not isinstance(config.get("settings"), dict):
        raise RunDirError(f"{path} is not a run of the task {task!r} (its {RUN_CONFIG} holds no settings)")
    try:
        return RunDir(Path(path)), kind(**config["settings"])
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{Path(path) / RUN_CONFIG} does not hold valid settings: {exc}") from None


def check_fields(settings: Any) -> None:
    """Every field of the dataclass ``settings`` has its annotated type (int, float, str or dict; an int is a
    float too) and every number is finite (a ``ValueError`` naming the field otherwise)."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        kind = {"int": int, "float": (int, float), "str": str, "dict": dict}[str(field.type)]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{field.name} must be {field.type}, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{field.name} must be finite, got {shown(value)}")


def train_in(run: RunDir, model: nn.Module, step_fn: Callable[[int, float], dict[str, float]],
             rng: torch.Generator, steps: int, lr: float, label: str, resume: bool) -> bool:
    """Run the shared training loop on ``model`` for ``steps`` steps (warm-up 5%, decay to 5% of ``lr``);
    ``rng`` is the stream ``step_fn`` draws from (checkpointed, so a resumed run draws the same batches).
    Returns false when Ctrl-C or SIGTERM stopped it (after saying how to go on)."""
    settings = LoopSettings(steps=steps, schedule=Schedule(lr, max(1, steps // 20), steps, 0.05),
                            grad_clip=None, log_every=10, checkpoint_every=100, label=label)
    try:
        TrainingLoop(run, model, step_fn, settings, rng).run(resume=resume)
    except Interrupted as stop:
        where = (f"checkpoint saved at step {stop.step}" if stop.step is not None
                 else "stopped mid-step; the last periodic checkpoint is kept")
        print(f"\ninterrupted: {where}; continue with: did train --resume {run.path}", file=sys.stderr)
        return False
    return True


def load_trained(run: RunDir, model: nn.Module) -> int:
    """Load the last checkpoint of ``run`` into ``model``; return its step."""
    state = run.load_checkpoint()
    if state is None:
        raise RunDirError(f"{run.path} has no checkpoint yet (train it first)")
    run.load_model(model, state)
    return int(state.get("step", 0))


def write_report(run: RunDir, report: dict[str, Any], table: str) -> None:
    """``report.json`` and ``report.md`` (the printed table) in the run folder."""
    run.write_json("report.json", report)
    atomic_write_text(run.file("report.md"), table + "\n")
