"""Data parallelism over ``torch.distributed``: who this process is, what share of the work it does, and the
few collectives the trainer and the evaluation need.

A run on ``P`` processes (ranks) is started by ``torchrun`` (or ``did train --nproc P``, which starts
torchrun), which describes the group in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``). :func:`init_from_env` joins it; without that environment nothing is
initialised and :func:`current` is the single process (rank 0 of 1), for which every collective here is
the identity. One code path therefore serves a laptop and many GPUs.

The rules the trainer and the evaluation follow (README, "Scale"):

* **Training.** Every rank draws the whole batch of ``B`` contexts from the one seeded stream and keeps
  its contiguous slice :func:`share` (the split of :func:`torch.tensor_split`), so the contexts of a step
  do not depend on ``P``. Each rank weights its loss by its share ``B_r / B``; :func:`sum_gradients` sums
  the gradients and the logged scalars over the ranks in float64 (one all-reduce), so every rank holds
  the single-process gradient (up to float32 rounding) and takes the same optimiser step.
* **Evaluation.** Contexts are dealt out in whole chunks (:func:`chunk_share`) so that every chunk is
  computed exactly as a single process computes it; results are gathered on every rank
  (:func:`gather`) and summarised there, bit for bit the single-process numbers.
* **Files.** Only rank 0 touches the run directory; decisions it takes alone (the run directory is free,
  a checkpoint to resume from) reach the others through :func:`on_main`.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch import distributed as dist

__all__ = ["World", "PeerError", "current", "launched", "init_from_env", "shutdown", "share", "chunk_share",
           "sum_gradients", "any_flags", "failed_ranks", "gather", "broadcast", "sync", "on_main", "together",
           "broadcast_parameters", "session"]

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in the process group: ``rank`` of ``size``, ``local_rank`` of ``local_size`` on its node.

    The default is the single process (no process group).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory, TensorBoard and the console output."""
        return self.rank == 0


class PeerError(RuntimeError):
    """This rank stops because another rank failed (the failing rank reports its own error).

    ``report`` is true when this rank's message is worth printing (rank 0 then says what happened to
    the run, e.g. where the checkpoint is); otherwise the command exits without a message of its own.
    """

    def __init__(self, message: str, report: bool = False) -> None:
        super().__init__(message)
        self.report = report


def launched() -> bool:
    """Was this process started by torchrun (or another ``env://`` launcher)?"""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def current() -> World:
    """The world of the initialised process group, else the single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    rank, size = dist.get_rank(), dist.get_world_size()
    return World(rank, size, int(os.environ.get("LOCAL_RANK", rank)), int(os.environ.get("LOCAL_WORLD_SIZE", size)))


def init_from_env() -> World:
    """Join the process group torchrun describes (``env://``), once; the single process when not launched.

    The backend is gloo for CPU tensors and, where CUDA is available, NCCL for CUDA tensors
    (``cpu:gloo,cuda:nccl``), so the small control collectives stay on the CPU whatever the
    device; each rank's CUDA device is ``cuda:LOCAL_RANK``.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return current()
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run without torchrun")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, init_method="env://")
    return current()


def shutdown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(n: int, world: World) -> slice:
    """This rank's contiguous share of ``n`` items: the ``rank``-th part of ``torch.tensor_split(range(n), size)``.

    The first ``n % size`` ranks get one item more; a rank may get none when ``n < size``.
    """
    base, extra = divmod(n, world.size)
    start = world.rank * base + min(world.rank, extra)
    return slice(start, start + base + (world.rank < extra))


def chunk_share(n: int, chunk: int, world: World) -> slice:
    """This rank's share of ``n`` items dealt out in whole chunks ``[k * chunk, (k + 1) * chunk)``.

    Each chunk is then computed by one rank exactly as a single process computes it, so
    batch-dependent rounding (a batched solver, blocked matrix products) cannot make the
    gathered result depend on the number of ranks. Ranks beyond ``ceil(n / chunk)`` get none.
    """
    chunks = share(-(-n // chunk), world)
    return slice(min(chunks.start * chunk, n), min(chunks.stop * chunk, n))


def _small_device() -> torch.device:
    """Where control tensors (flags, scalars) go: the CPU unless the group has no CPU backend."""
    if "gloo" in str(dist.get_backend()):
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def sum_gradients(world: World, params: Iterable[Tensor], scalars: dict[str, float]) -> dict[str, float]:
    """Sum the parameters' gradients and the named scalars over the ranks (in place; one float64 all-reduce).

    Each rank has back-propagated its share-weighted loss, so the sums are the
    single-process gradient and batch means. Summing in float64 and rounding once
    makes the result independent of the order of the ranks. A parameter no rank
    computed a gradient for keeps ``None`` (Adam then skips it, as in one process).
    Every rank must pass the same scalar names.
    """
    params = list(params)
    if world.size == 1 or not params:
        return scalars
    names = sorted(scalars)
    device = params[0].device
    parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).double() for p in params]
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float64, device=device)
    values = torch.tensor([float(scalars[k]) for k in names], dtype=torch.float64, device=device)
    flat = torch.cat([*parts, has, values])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
        offset += n
    counts = flat[offset:offset + len(params)]
    for p, count in zip(params, counts.tolist()):
        if count == 0:
            p.grad = None
    return dict(zip(names, flat[offset + len(params):].tolist()))


def any_flags(world: World, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true when it is true on any rank (every rank gets the same answer)."""
    if world.size == 1:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int64, device=_small_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def failed_ranks(world: World, failed: bool) -> list[int]:
    """The ranks on which ``failed`` is true (every rank gets the same list)."""
    if world.size == 1:
        return [0] if failed else []
    t = torch.zeros(world.size, dtype=torch.int64, device=_small_device())
    t[world.rank] = int(bool(failed))
    dist.all_reduce(t)
    return [r for r, v in enumerate(t.tolist()) if v]


def gather(world: World, obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable; tensors on the CPU), in rank order, on every rank."""
    if world.size == 1:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast(world: World, obj: T) -> T:
    """Rank 0's ``obj`` on every rank (the others pass anything, e.g. ``None``)."""
    if world.size == 1:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync(world: World) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written a checkpoint)."""
    if world.size > 1:
        dist.all_reduce(torch.zeros(1, device=_small_device()))


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def on_main(world: World, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only (it reads or writes the run directory) and give every rank its result.

    When ``fn`` fails, rank 0 raises its exception and the others a :class:`PeerError`,
    so all ranks stop together. The result must be picklable.
    """
    if world.size == 1:
        return fn()
    error: Exception | None = None
    outcome: tuple[bool, Any] = (True, None)
    if world.is_main:
        try:
            outcome = (True, fn())
        except Exception as exc:  # shared with the other ranks, then raised here as it is
            error, outcome = exc, (False, _describe(exc))
    ok, value = broadcast(world, outcome)
    if error is not None:
        raise error
    if not ok:
        raise PeerError(f"rank 0 failed: {value}")
    return value


def together(world: World, fn: Callable[[], T]) -> T:
    """Run ``fn`` on every rank; if it fails anywhere, every rank stops.

    The lowest failing rank raises its own exception (and so reports it once); the
    others raise a :class:`PeerError`. Used for checks every rank makes alike (the
    config, the components), so a problem is one error line, not one per rank.
    """
    try:
        value, error = fn(), None
    except Exception as exc:  # shared with the other ranks below
        value, error = None, exc
    if world.size == 1:
        if error is not None:
            raise error
        return value
    failures = gather(world, None if error is None else _describe(error))
    first = next((r for r, f in enumerate(failures) if f is not None), None)
    if first is None:
        return value
    if first == world.rank and error is not None:
        raise error
    raise PeerError(f"rank {first} failed: {failures[first]}")


def broadcast_parameters(world: World, module: torch.nn.Module) -> None:
    """Make every rank's parameters and buffers rank 0's (replicas start identical whatever each rank built)."""
    if world.size == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


@contextmanager
def session() -> Iterator[World]:
    """The world of this command: joins torchrun's process group when launched by it and leaves it after.

    A group someone else initialised (a test, a notebook) is used as it is and left alone.
    """
    created = launched() and not (dist.is_available() and dist.is_initialized())
    world = init_from_env()
    try:
        yield world
    finally:
        if created:
            shutdown()
