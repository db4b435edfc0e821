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
* convergence: per block and phase (evaluation, polish), the games solved and
  those the block flagged unconverged (:mod:`did_core.convergence`; the blocks'
  warnings are silenced and counted instead).

In a process group (torchrun) every rank calls :func:`evaluate_generator`: the
held-out contexts are dealt out to the ranks in whole chunks and the polish's
contexts one by one (:mod:`did_core.distributed`), the results are gathered on
every rank, and the report is the single process's, bit for bit (each chunk is
computed as one process computes it). Only ``world_size`` differs.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import multiprocessing
import numpy as np
import torch
from torch import Tensor

from did_core import distributed
from did_core.components import build_components, context_to, solve_induced
from did_core.config import TrainConfig
from did_core.convergence import SolveTally, counting
from did_core.distributed import World
from did_core.plugins import create
from did_core.runs import Progress
from did_core.tasks import Context, context_size, index_context

__all__ = ["evaluate_generator", "format_eval", "summarise", "values_under", "PolishSettings", "polish_context",
           "polish_seconds"]


def values_under(cfg: TrainConfig, parts: Any, block: Any, context: Context, x: Tensor,
                 chunk: int) -> tuple[Tensor, SolveTally]:
    """The designer's value ``[B]`` (float64, CPU) of interventions ``x [B, ...]`` under ``block``, ``chunk`` at a time.

    Also returns the solves' convergence tally.
    """
    out, tally = [], SolveTally()
    n = x.shape[0]
    for start in range(0, n, chunk):
        part = context_to(index_context(context, slice(start, start + chunk)), parts.device)
        xs = x[start:start + chunk].to(parts.device)
        with torch.no_grad(), counting():
            eq = solve_induced(parts, block, part, xs, cfg.concept)
            out.append(parts.objective.value(part, xs, eq).double().cpu())
        tally.record(eq)
    return torch.cat(out), tally


def _block(cfg: TrainConfig, parts: Any, name: str) -> Any:
    return parts.block if name == cfg.block else create("blocks", name)


def summarise(objective: Any, value: Tensor, baseline: Tensor, sizes: Tensor) -> dict[str, Any]:
    """Metric, baseline, share improved and count, overall and per size label.

    For an objective that reports a change, ``metric`` is ``value - baseline`` and ``baseline`` is 0;
    ``value`` and ``baseline_value`` are always the designer's absolute outcomes.
    """

    def stats(v: Tensor, b: Tensor) -> dict[str, Any]:
        metric = v - b if objective.report_change else v
        base = torch.zeros_like(b) if objective.report_change else b
        return {
            "metric": float(metric.mean()),
            "baseline": float(base.mean()),
            "value": float(v.mean()),
            "baseline_value": float(b.mean()),
            "improved_share": float(objective.improved(v, b).double().mean()),
            "contexts": int(v.numel()),
        }

    out = stats(value, baseline)
    out["per_size"] = {str(int(s)): stats(value[sizes == s], baseline[sizes == s]) for s in torch.unique(sizes)}
    return out


def generate(parts: Any, context: Context, chunk: int = 64) -> tuple[Tensor, Tensor]:
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


def _concat(parts: list[Tensor | None]) -> Tensor:
    """Concatenate the ranks' pieces in rank order (a rank with no share sends ``None``)."""
    return torch.cat([p for p in parts if p is not None])


def _sharded_values(cfg: TrainConfig, parts: Any, blocks: dict[str, Any], context: Context, xs: list[Tensor],
                    chunk: int, world: World) -> tuple[list[dict[str, Tensor]], dict[str, SolveTally]]:
    """``[{block: objective value [N]}]`` of each intervention ``x [N, ...]`` of ``xs`` on all ``N`` contexts,
    and each block's tally of those solves.

    This rank computes its chunks (:func:`did_core.distributed.chunk_share`); one gather
    gives every rank the whole vectors and tallies.
    """
    n = context_size(context)
    mine = distributed.chunk_share(n, chunk, world)
    own = index_context(context, mine)
    local = [{name: values_under(cfg, parts, block, own, x[mine], chunk) if mine.stop > mine.start
              else (None, SolveTally()) for name, block in blocks.items()} for x in xs]
    gathered = distributed.gather(world, local)
    values = [{name: _concat([g[i][name][0] for g in gathered]) for name in blocks} for i in range(len(xs))]
    tallies = {name: sum((g[i][name][1] for g in gathered for i in range(len(xs))), SolveTally()) for name in blocks}
    return values, tallies


def evaluate_generator(cfg: TrainConfig, parts: Any, blocks: list[str], contexts: int, seed: int,
                       chunk: int = 64, polish: "PolishSettings | None" = None,
                       world: World | None = None) -> dict[str, Any]:
    """Score ``parts.generator`` on ``contexts`` held-out contexts drawn with ``seed``.

    With a ``world`` of several ranks (default: the process group, if any) every rank
    must call this alike; each computes its share and every rank returns the whole result.

    **Returns:** ``{block: {metric, baseline, improved_share, contexts, metric_name, size_axis, concept, eps,
    absolute_eps, seed, guard_block, world_size, per_size, guarded: {...}, bound: {...} (where the task's
    objective knows one, :meth:`DesignObjective.bound`), polished: {...} (with polish),
    convergence: {"evaluation": tally, "polish": tally (with polish)}}}`` (tallies as
    :meth:`did_core.convergence.SolveTally.as_dict`).
    """
    world = world or distributed.current()
    objective = parts.objective
    held_out = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    sizes = parts.sampler.size_of(held_out).cpu()
    mine = distributed.chunk_share(contexts, chunk, world)
    own = generate(parts, index_context(held_out, mine), chunk) if mine.stop > mine.start else (None, None)
    gathered = distributed.gather(world, own)
    x, x0 = _concat([g[0] for g in gathered]), _concat([g[1] for g in gathered])
    solvers = {n: _block(cfg, parts, n) for n in blocks}
    (values, baselines), tallies = _sharded_values(cfg, parts, solvers, held_out, [x, x0], chunk, world)
    convergence = {name: {"evaluation": tallies[name]} for name in blocks}
    exact = cfg.exact_block if cfg.exact_block in values else blocks[-1]
    keep = objective.improved(values[exact], baselines[exact])
    bound = objective.bound(held_out)
    result: dict[str, Any] = {}
    for name in blocks:
        entry = summarise(objective, values[name], baselines[name], sizes)
        entry["guarded"] = summarise(objective, torch.where(keep, values[name], baselines[name]), baselines[name],
                                     sizes)
        entry.update(metric_name=objective.metric_name, report_change=objective.report_change,
                     size_axis=parts.task.size_axis, concept=cfg.concept,
                     eps=cfg.eps, absolute_eps=cfg.absolute_eps, seed=seed, guard_block=exact,
                     world_size=world.size)
        if bound is not None:
            entry["bound"] = summarise(objective, bound.detach().double().cpu(), baselines[name], sizes)
        if polish is not None:
            polished, convergence[name]["polish"] = polish_all(cfg, held_out, x, name, polish, world)
            scorers = {"block": solvers[name], "exact": _block(cfg, parts, exact)}
            (scored,), tallies = _sharded_values(cfg, parts, scorers, held_out, [polished], chunk, world)
            convergence[name]["evaluation"] += tallies["block"]
            convergence[exact]["evaluation"] += tallies["exact"]
            entry["polished"] = {
                "budget": polish.budget,
                "under_block": summarise(objective, scored["block"], baselines[name], sizes),
                "under_exact": summarise(objective, scored["exact"], baselines[exact], sizes),
            }
        result[name] = entry
    for name in blocks:
        result[name]["convergence"] = {phase: tally.as_dict() for phase, tally in convergence[name].items()}
    return result


@dataclass(frozen=True)
class PolishSettings:
    """Nelder-Mead budget (function evaluations per context) and worker processes (per rank)."""

    budget: int
    workers: int = 0

    def worker_count(self, world: World | None = None) -> int:
        """``workers``, else this node's CPUs shared among its ranks (at most 8 per rank)."""
        local = (world or World()).local_size
        return self.workers or max(1, min((os.cpu_count() or 1) // local, 8))


_WORKER: dict[str, Any] = {}


def _init_worker(config: dict[str, Any]) -> None:
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
        blocks[block_name] = _block(cfg, parts, block_name)
    tally = SolveTally()
    return polish_context(cfg, parts, blocks[block_name], context, x, budget, tally), tally


def polish_context(cfg: TrainConfig, parts: Any, block: Any, context: Context, x: Tensor, budget: int,
                   tally: SolveTally | None = None) -> Tensor:
    """Nelder-Mead on one context's intervention ``x [1, ...]`` (real entries only), from ``x``.

    Each function evaluation solves the induced game with ``block`` (its non-convergence
    warnings silenced; a :class:`~did_core.convergence.SolveTally` given as ``tally`` counts
    them). Returns the best intervention found (never worse than the start under ``block``).
    """
    from scipy.optimize import minimize

    objective = parts.objective
    real = objective.intervention_mask(context)
    real = torch.ones_like(x, dtype=torch.bool) if real is None else real.expand_as(x)
    sign = 1.0 if objective.minimize else -1.0
    start = x[real].double().numpy()

    def f(z: np.ndarray) -> float:
        candidate = x.clone()
        candidate[real] = torch.as_tensor(z, dtype=x.dtype)
        with torch.no_grad(), counting():
            try:
                eq = solve_induced(parts, block, context, candidate, cfg.concept)
            except (RuntimeError, ValueError):
                return float("inf")
            if tally is not None:
                tally.record(eq)
            return sign * float(objective.value(context, candidate, eq)[0])

    if start.size == 0:
        return x
    res = minimize(f, start, method="Nelder-Mead",
                   options={"maxfev": budget, "xatol": 1e-6, "fatol": 1e-9, "adaptive": start.size > 8})
    best = x.clone()
    if res.fun <= f(start):
        best[real] = torch.as_tensor(res.x, dtype=x.dtype)
    return best


def polish_seconds(cfg: TrainConfig, parts: Any, context: Context, blocks: list[str], contexts: int,
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
            block = _block(cfg, parts, name)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                parts.objective.value(first, x, solve_induced(parts, block, first, x, cfg.concept))
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
    if workers == 1:
        _init_worker(cfg.model_dump())
        results: Any = map(_polish_job, jobs)
        pool = None
    else:
        # fork is cheap and keeps the plugins this process loaded; a process that initialised CUDA must spawn.
        method = "spawn" if torch.cuda.is_initialized() else "fork"
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_init_worker, initargs=(cfg.model_dump(),))
        results = pool.map(_polish_job, jobs)
    try:
        for polished, counted in results:
            out.append(polished)
            tally += counted
            if progress is not None:
                progress.update(len(out), {})
    finally:
        if pool is not None:
            pool.shutdown()
        if progress is not None:
            progress.close()
    gathered = distributed.gather(world, (torch.cat(out) if out else None, tally))
    return _concat([g[0] for g in gathered]), sum((g[1] for g in gathered), SolveTally())


def format_eval(result: dict[str, Any]) -> str:
    """A small Markdown table of an evaluation: one row per block."""
    lines = ["| block | metric | value | baseline | improved | guarded | contexts |", "|---|---|---|---|---|---|---|"]
    for name, r in result.items():
        guarded = r.get("guarded")
        absolute = f" (absolute {r['baseline_value']:.4f})" if r.get("report_change") else ""
        lines.append(f"| {name} | {r['metric_name']} | {r['metric']:.4f} | {r['baseline']:.4f}{absolute} | "
                     f"{100 * r['improved_share']:.0f}% | "
                     f"{'' if guarded is None else format(guarded['metric'], '.4f')} | {r['contexts']} |")
    return "\n".join(lines)
