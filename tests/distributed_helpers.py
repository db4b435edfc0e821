"""Run functions on fresh CPU processes, several of them joined in a gloo process group as torchrun would.

:func:`run_groups` spawns fresh interpreters (spawn, not fork: a forked pytest process
may hang in OpenMP); in a group of several it sets the environment torchrun sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins a gloo group;
each installs the toy plugins (``tests/toys.py``), takes one thread and calls
``fn(rank, *args)``. An exception in any process fails the caller with its traceback.

:func:`toy_site` writes a dist-info folder that declares the toys as an installed plugin,
so a subprocess (``did train --nproc``, torchrun's workers) finds them through entry points.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port that is free now on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...],
               barrier: Any) -> None:
    if world > 1:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                          LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist

    import toys

    torch.set_num_threads(1)
    with toys.toy_plugins():
        if world > 1:
            dist.init_process_group("gloo", init_method="env://")
        try:
            fn(rank, barrier, *args)
        except BaseException:
            barrier.abort()  # the other groups stop waiting for this one
            raise
        finally:
            if world > 1:
                dist.destroy_process_group()


def run_groups(*groups: tuple[int, Callable[..., Any], tuple[Any, ...]], timeout: float = 600) -> None:
    """Run every ``(world, fn, args)`` at once: ``fn(rank, barrier, *args)`` on ``world`` spawned processes.

    A group of several processes is one gloo process group, set up as torchrun sets it up; a
    group of one is a plain process (no process group, no torchrun environment). ``barrier``
    (a ``multiprocessing.Barrier`` of every process of every group) lets a group wait for
    another's files; it is broken when a process fails. ``fn`` must be importable by name.
    Raises (with the traceback) if any process fails.
    """
    barrier = mp.get_context("spawn").Barrier(sum(world for world, _, _ in groups), timeout=timeout)
    contexts = [mp.start_processes(_rank_main, args=(world, free_port(), fn, args, barrier), nprocs=world,
                                   join=False, start_method="spawn") for world, fn, args in groups]
    for context in contexts:
        while not context.join():
            pass


def toy_site(folder: Path) -> Path:
    """A folder for ``PYTHONPATH`` that holds a dist-info declaring ``toys`` as the plugin ``did_core_test_toys``."""
    import toys

    info = folder / f"{toys.TOY_DISTRIBUTION.replace('-', '_')}-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {toys.TOY_DISTRIBUTION}\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[did]\n{toys.TOY_PLUGIN} = toys\n")
    return folder
