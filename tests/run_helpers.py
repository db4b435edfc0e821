"""Helpers of the tests that train, evaluate or refuse runs: a tiny toy run, a byte-for-byte picture of a folder,
and the environment of a ``did`` subprocess that sees the toy plugin."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TINY", "snapshot", "console_env"]

#: A run of the toy task (tests/toys.py) that trains in a second; its block is the preferred installed exact block.
TINY = {"task": "toy_task", "steps": 3, "batch_size": 4, "eval_contexts": 4,
        "checkpoint_every": 2, "log_every": 1, "warmup_steps": 1,
        "sampler_options": {"min_actions": 2, "max_actions": 2}, "generator_options": {"width": 8, "depth": 1}}


def console_env(toy_site: Path) -> dict[str, str]:
    """The environment of a ``did`` subprocess started now: this one's, with the toy plugin installed.

    Inside a test the toys are loaded and ``DID_LOAD_PLUGINS`` (when set, even empty) names them
    (``toys.installed``); the subprocess finds them through the entry point in ``toy_site``
    (``distributed_helpers.toy_site``).
    """
    tests = Path(__file__).resolve().parent
    path = os.pathsep.join([str(toy_site), str(tests), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``: a file's bytes, ``None`` for a folder (so a new empty folder shows too)."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}
