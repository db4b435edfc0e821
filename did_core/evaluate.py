"""Held-out evaluation of a mechanism generator (docs/mathematics.md, section 6).

On a fixed seeded set of contexts, the generator's intervention and the naive
baseline intervention are both solved with each named block, so learned-block
and exact-block numbers refer to the same interventions. Reported per block and
per game size:

* unguarded: the generator's intervention as it is;
* guarded: the generator's intervention only where the exact block says it
  beats the baseline, else the baseline (the guarantee a deployed mechanism
  should carry);
* polished (optional): Nelder-Mead (scipy) on each context's intervention,
  started from the generator's output, each evaluation solving the equilibrium
  with that block, scored under that block and under the exact block;
* range (optional): the worst and best value over each context's whole
  eps-equilibrium set for the generator and the baseline, and the worst-case
  guard (:mod:`did_core.equilibrium_range`, docs/mathematics.md, section 8);
* convergence: per block and phase (evaluation, polish), the games solved and
  those the block flagged unconverged (:mod:`did_core.convergence`; the blocks'
  warnings are silenced and counted instead).

Before any work, :func:`check_held_out` estimates from a few contexts the memory
and time of evaluating the whole set and refuses one over its bound
(:class:`did_core.bounds.TooLarge`). The polish's worker processes leave Ctrl-C to
this process, which ends every one of them when it is interrupted.

In a process group (torchrun) every rank calls :func:`evaluate_generator`: the
held-out contexts are dealt out to the ranks in whole chunks and the polish's
contexts one by one (:mod:`did_core.distributed`), the results are gathered on
every rank, and the report is the single process's, bit for bit (each chunk is
computed as one process computes it). Only ``world_size`` differs.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from did_core import distributed
from did_core.blocks import EquilibriumBlock
from did_core.bounds import TooLarge, available_cores, check_memory, duration
from did_core.components import Components, build_components
from did_core.config import TrainConfig
from did_core.convergence import SolveTally, counting
from did_core.distributed import World
from did_core.equilibrium_range import ContextRanges, context_ranges, linear_form
from did_core.plugins import create
from did_core.results import BlockResult, PolishedResult, summarise, summarise_range
from did_core.runs import Progress
from did_core.scoring import context_to
from did_core.tasks import Context, context_size, index_context

__all__ = ["evaluate_generator", "generate", "PolishSettings", "polish_seconds", "block_named", "check_held_out",
           "check_contexts_memory", "HELD_OUT_OVERHEAD", "MAX_EVALUATION_SECONDS"]


def block_named(cfg: TrainConfig, parts: Components, name: str) -> EquilibriumBlock:
    """The block ``name``: the run's own (with its options) when it is the run's block, else a new one."""
    return parts.block if name == cfg.block else create("blocks", name)


def generate(parts: Components, context: Context, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """The generator's and the baseline's interventions for a batch of contexts (on the CPU)."""
    parts.generator.eval()
    xs, x0s = [], []
    n = context_size(context)
    with torch.no_grad():
        for start in range(0, n, chunk):
            part = context_to(index_context(context, slice(start, start + chunk)), parts.device)
            xs.append(parts.generator(part).cpu())
            x0s.append(parts.objective.baseline_intervention(part).cpu())
    return torch.cat(xs), torch.cat(x0s)


#: Held-out contexts take, with their interventions and the evaluation's working tensors, about this many times the
#: bytes of the contexts and interventions alone (measured peaks: 3.5 to 5.5 times on the inverse task).
HELD_OUT_OVERHEAD = 5
#: An evaluation estimated to take longer than this (in seconds) is refused.
MAX_EVALUATION_SECONDS = 24 * 3600
#: Contexts drawn to estimate an evaluation's memory and time.
_ESTIMATE_SAMPLE = 16


def _nbytes(*tensors: Any) -> int:
    return sum(t.nelement() * t.element_size() for t in tensors if isinstance(t, Tensor))


@dataclass
class _Sample:
    """A few contexts drawn to estimate a larger set, their interventions, and the memory one context of the set
    takes (its tensors' bytes times :data:`HELD_OUT_OVERHEAD`)."""

    context: Context
    x: Tensor
    x0: Tensor
    each: float


def _sample(parts: Components, count: int, chunk: int = 64) -> _Sample:
    size = min(count, _ESTIMATE_SAMPLE)
    context = parts.sampler.sample(size, torch.Generator().manual_seed(0))
    x, x0 = generate(parts, context, chunk)
    return _Sample(context, x, x0, HELD_OUT_OVERHEAD * (_nbytes(*context.values()) + _nbytes(x, x0)) / size)


def check_contexts_memory(parts: Components, count: int, what: str, flag: str) -> None:
    """Refuse (a one-line :class:`~did_core.bounds.TooLarge` naming ``flag``) ``count`` contexts of ``parts``'
    sampler (``what`` they are, e.g. "contexts of one batch") whose memory, estimated from a few, is over
    :func:`did_core.bounds.memory_limit`, before they are drawn."""
    check_memory(_sample(parts, count).each, count, what, flag)


def check_held_out(cfg: TrainConfig, parts: Components, blocks: list[str], contexts: int, flag: str,
                   chunk: int = 64, world: World | None = None) -> None:
    """Refuse (a one-line :class:`~did_core.bounds.TooLarge` naming ``flag``) an evaluation of ``contexts``
    held-out contexts under ``blocks`` whose memory or time is over its bound, before it starts.

    A sample of a few contexts is drawn, generated for and solved under every block: its
    tensors' bytes times :data:`HELD_OUT_OVERHEAD` per context, times ``contexts``, must
    stay within :func:`did_core.bounds.memory_limit` (half this machine's memory: every
    rank holds the whole set), and its solve time per context, times ``contexts`` shared
    by the ranks, within :data:`MAX_EVALUATION_SECONDS`.
    """
    world = world or distributed.current()
    sample = _sample(parts, contexts, chunk)
    check_memory(sample.each, contexts, "held-out contexts with their evaluation", flag)
    with torch.no_grad(), counting():  # timing only: the evaluation counts its own games
        start = time.perf_counter()
        for name in blocks:
            scorer = parts.scorer(block_named(cfg, parts, name))
            for intervention in (sample.x, sample.x0):
                scorer.values(sample.context, intervention, chunk)
        each_s = (time.perf_counter() - start) / context_size(sample.context)
    seconds = each_s * contexts / world.size
    if seconds > MAX_EVALUATION_SECONDS:
        most = int(MAX_EVALUATION_SECONDS * world.size // each_s)
        raise TooLarge(f"evaluating {contexts} held-out contexts under {', '.join(blocks)} would take about "
                       f"{duration(seconds)} ({1000 * each_s:.2g} ms a context), over the bound of "
                       f"{duration(MAX_EVALUATION_SECONDS)}: at most {most} fit; lower {flag}")


def _concat(parts: list[Tensor | None]) -> Tensor:
    """Concatenate the ranks' pieces in rank order (a rank with no share sends ``None``)."""
    return torch.cat([p for p in parts if p is not None])


def _sharded_values(parts: Components, blocks: dict[str, EquilibriumBlock], context: Context, xs: list[Tensor],
                    chunk: int, world: World) -> tuple[list[dict[str, Tensor]], dict[str, SolveTally]]:
    """``[{block: objective value [N]}]`` of each intervention ``x [N, ...]`` of ``xs`` on all ``N`` contexts,
    and each block's tally of those solves.

    This rank computes its chunks (:func:`did_core.distributed.chunk_share`); one gather
    gives every rank the whole vectors and tallies.
    """
    n = context_size(context)
    mine = distributed.chunk_share(n, chunk, world)
    own = index_context(context, mine)
    local = [{name: parts.scorer(block).values(own, x[mine], chunk) if mine.stop > mine.start
              else (None, SolveTally()) for name, block in blocks.items()} for x in xs]
    gathered = distributed.gather(world, local)
    values = [{name: _concat([g[i][name][0] for g in gathered]) for name in blocks} for i in range(len(xs))]
    tallies = {name: sum((g[i][name][1] for g in gathered for i in range(len(xs))), SolveTally()) for name in blocks}
    return values, tallies


@dataclass
class _HeldOut:
    """The held-out contexts, their size labels, the generator's and the baseline's interventions."""

    context: Context
    sizes: Tensor
    x: Tensor
    x0: Tensor


def _held_out(parts: Components, contexts: int, seed: int, chunk: int, world: World) -> _HeldOut:
    """Draw the held-out contexts with ``seed``; every rank generates the interventions of its chunks."""
    context = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    mine = distributed.chunk_share(contexts, chunk, world)
    own = generate(parts, index_context(context, mine), chunk) if mine.stop > mine.start else (None, None)
    gathered = distributed.gather(world, own)
    return _HeldOut(context, parts.sampler.size_of(context).cpu(), _concat([g[0] for g in gathered]),
                    _concat([g[1] for g in gathered]))


def evaluate_generator(cfg: TrainConfig, parts: Components, blocks: list[str], contexts: int, seed: int,
                       chunk: int = 64, polish: "PolishSettings | None" = None,
                       world: World | None = None, ranges: bool = False) -> dict[str, BlockResult]:
    """Score ``parts.generator`` on ``contexts`` held-out contexts drawn with ``seed``, under every block of
    ``blocks``: one :class:`~did_core.results.BlockResult` per block (its ``as_dict()`` is the stored form).

    The guard keeps the generator's intervention where the exact block (``cfg.exact_block`` if evaluated,
    else the last block) says it beats the baseline. ``ranges``: also the range of the value over each context's
    eps-equilibrium set and the worst-case guard (``BlockResult.range``; the objective must have a
    ``linear_value``, else :class:`~did_core.equilibrium_range.RangeError` before anything is solved). With a
    ``world`` of several ranks (default: the process group, if any) every rank must call this alike; each computes
    its share and every rank returns the whole result.
    """
    world = world or distributed.current()
    objective = parts.objective
    held = _held_out(parts, contexts, seed, chunk, world)
    if ranges:  # an objective without a linear form fails now, before any solve
        linear_form(objective, index_context(held.context, slice(0, 1)), held.x[:1])
    solvers = {n: block_named(cfg, parts, n) for n in blocks}
    (values, baselines), tallies = _sharded_values(parts, solvers, held.context, [held.x, held.x0], chunk, world)
    exact = cfg.exact_block if cfg.exact_block in values else blocks[-1]
    keep = objective.improved(values[exact], baselines[exact])
    bound = objective.bound(held.context)
    result: dict[str, BlockResult] = {}
    for name in blocks:
        result[name] = BlockResult(
            unguarded=summarise(objective, values[name], baselines[name], held.sizes),
            guarded=summarise(objective, torch.where(keep, values[name], baselines[name]), baselines[name],
                              held.sizes),
            metric_name=objective.metric_name, report_change=objective.report_change,
            size_axis=parts.task.size_axis, concept=cfg.concept, eps=cfg.eps, absolute_eps=cfg.absolute_eps,
            seed=seed, guard_block=exact, world_size=world.size,
            bound=None if bound is None else summarise(objective, bound.detach().double().cpu(), baselines[name],
                                                       held.sizes),
            convergence={"evaluation": tallies[name]})
    if ranges:
        found = _sharded_ranges(parts, held, chunk, world)
        for name in blocks:
            result[name].range = summarise_range(objective, found, values[name], baselines[name], held.sizes)
    if polish is not None:
        for name in blocks:
            _polish_result(cfg, parts, held, solvers[name], name, exact, baselines, polish, chunk, world, result)
    return result


def _sharded_ranges(parts: Components, held: _HeldOut, chunk: int, world: World) -> ContextRanges:
    """The ranges of the generator's and the baseline's interventions on every held-out context: this rank's
    chunks solved here (two LPs per context and intervention), gathered on every rank. The ranges do not depend on
    a block: they are computed once for all."""
    mine = distributed.chunk_share(context_size(held.context), chunk, world)
    own = (context_ranges(parts.objective, index_context(held.context, mine), held.x[mine], held.x0[mine],
                          parts.concept, parts.eps, first=mine.start) if mine.stop > mine.start else None)
    return ContextRanges.cat([g for g in distributed.gather(world, own) if g is not None])


def _polish_result(cfg: TrainConfig, parts: Components, held: _HeldOut, block: EquilibriumBlock, name: str,
                   exact: str, baselines: dict[str, Tensor], polish: "PolishSettings", chunk: int, world: World,
                   result: dict[str, BlockResult]) -> None:
    """Polish every held-out intervention under block ``name`` and score the polished ones under that block and
    the exact block, into ``result[name].polished`` (and both blocks' convergence)."""
    polished, result[name].convergence["polish"] = polish_all(cfg, held.context, held.x, name, polish, world)
    scorers = {"block": block, "exact": block_named(cfg, parts, exact)}
    (scored,), tallies = _sharded_values(parts, scorers, held.context, [polished], chunk, world)
    result[name].convergence["evaluation"] += tallies["block"]
    result[exact].convergence["evaluation"] += tallies["exact"]
    result[name].polished = PolishedResult(
        budget=polish.budget,
        under_block=summarise(parts.objective, scored["block"], baselines[name], held.sizes),
        under_exact=summarise(parts.objective, scored["exact"], baselines[exact], held.sizes))


@dataclass(frozen=True)
class PolishSettings:
    """Nelder-Mead budget (function evaluations per context) and worker processes (per rank)."""

    budget: int
    workers: int = 0

    def worker_count(self, world: World | None = None) -> int:
        """``workers``, else the cores this process may use shared among this node's ranks (at most 8 per
        rank)."""
        local = (world or World()).local_size
        return self.workers or max(1, min(available_cores() // local, 8))


_WORKER: dict[str, Any] = {}


def _init_worker(config: dict[str, Any]) -> None:
    """A pool worker's start: SIGINT ignored (Ctrl-C is the parent's, which ends the workers), then the parts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _load_worker(config)


def _load_worker(config: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig(**config)
    _WORKER["cfg"] = cfg
    _WORKER["parts"] = build_components(cfg.model_copy(update={"device": "cpu"}))
    _WORKER["blocks"] = {}


def _polish_job(args: tuple[Context, Tensor, str, int]) -> tuple[Tensor, SolveTally]:
    context, x, block_name, budget = args
    cfg, parts = _WORKER["cfg"], _WORKER["parts"]
    blocks = _WORKER["blocks"]
    if block_name not in blocks:
        blocks[block_name] = block_named(cfg, parts, block_name)
    tally = SolveTally()
    return parts.scorer(blocks[block_name]).polish(context, x, budget, tally), tally


@contextmanager
def _polished(cfg: TrainConfig, jobs: list[Any], workers: int) -> Iterator[Iterator[tuple[Tensor, SolveTally]]]:
    """The results of ``_polish_job`` on ``jobs`` in order: in this process (one worker) or in a pool of
    ``workers`` processes.

    The workers ignore SIGINT (a Ctrl-C at a terminal reaches all of them) and are
    forked with it ignored, so none prints a traceback; when the caller stops early (an
    interrupt, an error) the pending jobs are cancelled and every worker is terminated
    and joined before the exception goes on, so none is left running.
    """
    if workers == 1:
        _load_worker(cfg.model_dump())
        yield map(_polish_job, jobs)
        return
    # fork is cheap and keeps the plugins this process loaded; a process that initialised CUDA must spawn.
    method = "spawn" if torch.cuda.is_initialized() else "fork"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                               initializer=_init_worker, initargs=(cfg.model_dump(),))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        results = pool.map(_polish_job, jobs)  # starts the workers: they are born ignoring SIGINT
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        yield results
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pool's pending jobs and end its workers now (a worker's running job is abandoned)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public accessor for them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(5)


def polish_seconds(cfg: TrainConfig, parts: Components, context: Context, blocks: list[str], contexts: int,
                   settings: PolishSettings, repeats: int = 3, world: World | None = None) -> float:
    """Estimated wall time of polishing ``contexts`` contexts under each of ``blocks``, in seconds.

    One function evaluation (induce, solve, value) is timed on the first context of
    ``context`` under each block (best of ``repeats``); the estimate assumes every
    context uses its whole budget, spread over the workers (of every rank of ``world``), so it is
    an upper bound when Nelder-Mead stops early.
    """
    world = world or distributed.current()
    first = context_to(index_context(context, slice(0, 1)), parts.device)
    with torch.no_grad(), counting():  # timing only: the evaluation counts these games
        x = parts.objective.baseline_intervention(first)
        per_evaluation = 0.0
        for name in blocks:
            scorer = parts.scorer(block_named(cfg, parts, name))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                scorer.value(first, x)
                times.append(time.perf_counter() - start)
            per_evaluation += min(times)
    return per_evaluation * settings.budget * contexts / (settings.worker_count(world) * world.size)


def polish_all(cfg: TrainConfig, context: Context, x: Tensor, block_name: str, settings: PolishSettings,
               world: World | None = None) -> tuple[Tensor, SolveTally]:
    """Polish every context's intervention ``x [N, ...]``; return the polished ``[N, ...]`` and the tally of
    the polish's solves (over every worker and rank) on every rank.

    One path for one process and many: this rank takes its contiguous share of the
    contexts (all of them without a process group), polishes them in its own pool of
    ``settings.worker_count`` processes (in this process when that is 1), and the
    shares are gathered in order. Each context is polished alone, so the result does
    not depend on how the contexts are dealt out.
    """
    world = world or distributed.current()
    mine = distributed.share(x.shape[0], world)
    jobs = [(index_context(context, slice(i, i + 1)), x[i:i + 1].clone(), block_name, settings.budget)
            for i in range(mine.start, mine.stop)]
    label = f"polish/{block_name}" + (f" (rank 0 of {world.size})" if world.size > 1 else "")
    progress = Progress(len(jobs), label=label) if world.is_main else None
    out: list[Tensor] = []
    tally = SolveTally()
    workers = min(settings.worker_count(world), max(len(jobs), 1))
    try:
        with _polished(cfg, jobs, workers) as results:
            for polished, counted in results:
                out.append(polished)
                tally += counted
                if progress is not None:
                    progress.update(len(out), {})
    finally:
        if progress is not None:
            progress.close()
    gathered = distributed.gather(world, (torch.cat(out) if out else None, tally))
    return _concat([g[0] for g in gathered]), sum((g[1] for g in gathered), SolveTally())
