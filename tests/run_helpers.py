"""Helpers of the tests that train, evaluate or refuse runs: a tiny toy run and a byte-for-byte picture of a folder."""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY", "snapshot"]

#: A run of the toy task (tests/toys.py) that trains in a second; its block is the preferred installed exact block.
TINY = {"task": "toy_task", "steps": 3, "batch_size": 4, "eval_contexts": 4,
        "checkpoint_every": 2, "log_every": 1, "warmup_steps": 1,
        "sampler_options": {"min_actions": 2, "max_actions": 2}, "generator_options": {"width": 8, "depth": 1}}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``: a file's bytes, ``None`` for a folder (so a new empty folder shows too)."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}
