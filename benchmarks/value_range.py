"""How good a mechanism is in the worst case: the designer's value at the maximum-entropy equilibrium against its
range over the whole eps-equilibrium set (docs/mathematics.md, section 8).

    python benchmarks/value_range.py --task contract --concept cce
    python benchmarks/value_range.py --task commitment --concept cce   # no shipped generator: per-instance search
    python benchmarks/value_range.py --task contract --concept cce --optimise --out benchmarks/results/X.md
    python benchmarks/value_range.py --generator RUN_DIR --contexts 64

On held-out contexts drawn from the generator's own sampling (a shipped generator's by
default, so the paper profile for the shipped ones), for the designed intervention
and the baseline intervention:

* the value at the maximum-entropy equilibrium under the exact block;
* the worst and best value over the eps-equilibrium set of the induced game (two
  LPs per context, :func:`did_core.equilibrium_range.value_range`);
* the two guards: the ME guard (the intervention where its ME value beats the
  baseline's) and the worst-case guard (where its worst case beats the baseline's).

The designed intervention is the generator's (``--task`` with a shipped generator,
or ``--generator RUN_DIR``), else (``--optimise``, or a task that ships none) the task's
per-instance optimisation through the exact block (``--steps``, ``--lr``) on contexts of
the task's ``--profile``. Every number is in the task's metric: for a change metric, minus the
baseline intervention's ME value (section 8). The table (overall and per size group)
goes to ``benchmarks/results/value_range_TASK_CONCEPT.md``, the numbers to a JSON
file beside it, and, with matplotlib, a scatter of ME value against worst case per
context to a PNG beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from did_core.components import Components, build_components, load_trained
from did_core.config import TrainConfig, resolve_train_config
from did_core.equilibrium_range import context_ranges, in_metric
from did_core.evaluate import generate
from did_core.plugins import create
from did_core.report import command_line, within, write_result
from did_core.shipped import ShippedError, shipped_concepts, shipped_folder
from did_core.tasks import index_context

HERE = Path(__file__).resolve().parent


def _double(context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in context.items()}


def _groups(sizes: torch.Tensor, count: int = 4) -> list[tuple[int, int]]:
    """``count`` contiguous size ranges covering the sizes present."""
    low, high = int(sizes.min()), int(sizes.max())
    width = max(1, -(-(high - low + 1) // count))
    return [(a, min(a + width - 1, high)) for a in range(low, high + 1, width)]


def _parts(folder: Path | None, task: str, concept: str, profile: str) -> tuple[TrainConfig, Components, str]:
    """The config and components of a run folder with its generator loaded, else of the task's profile; and where
    the designed intervention comes from."""
    if folder is None:
        cfg = resolve_train_config({"task": task, "concept": concept, "profile": profile})
        return cfg, build_components(cfg), "per-instance optimisation"
    cfg, parts, _ = load_trained(folder)
    return cfg, parts, f"generator {within(folder, HERE.parent)}"


def _designed(cfg: TrainConfig, parts: Components, context: dict[str, torch.Tensor], generated: bool, steps: int,
              lr: float, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The designed and the baseline interventions of every context."""
    if generated:
        return generate(parts, context, chunk)
    instances = parts.task.instances
    optimiser = None if instances is None else type(instances).optimiser
    if optimiser is None:
        raise ValueError(f"task {cfg.task!r} ships no generator and has no per-instance optimisation: give "
                         f"--generator RUN_DIR")
    block = create("blocks", cfg.exact_block)
    xs = [optimiser(index_context(context, slice(s, s + chunk)), block, parts.concept, parts.eps, steps, lr).detach()
          for s in range(0, next(iter(context.values())).shape[0], chunk)]
    with torch.no_grad():
        return torch.cat(xs), parts.objective.baseline_intervention(context)


def _mean(t: torch.Tensor) -> float:
    return float(t.double().mean())


def measure(folder: Path | None, task: str, concept: str, profile: str, contexts: int, seed: int, steps: int,
            lr: float, chunk: int) -> dict[str, Any]:
    """The measurement: settings, one row per size group and the per-context points, JSON-ready."""
    cfg, parts, source = _parts(folder, task, concept, profile)
    objective = parts.objective
    context = _double(parts.sampler.sample(contexts, torch.Generator().manual_seed(seed)))
    started = time.perf_counter()
    x, x0 = _designed(cfg, parts, context, folder is not None, steps, lr, chunk)
    design_seconds = time.perf_counter() - started
    scorer = parts.scorer(create("blocks", cfg.exact_block))
    value, baseline = (scorer.values(context, i.double(), chunk)[0] for i in (x, x0))
    started = time.perf_counter()
    ranges = context_ranges(objective, context, x.double(), x0.double(), parts.concept, parts.eps)
    lp_seconds = time.perf_counter() - started
    keep_me = objective.improved(value, baseline)
    keep_worst = ranges.keep(objective)

    def metric(t: torch.Tensor) -> torch.Tensor:
        return in_metric(objective, t, baseline)

    columns = {
        "baseline_me": metric(baseline), "baseline_worst": metric(ranges.baseline_worst),
        "baseline_best": metric(ranges.baseline_best), "me": metric(value), "worst": metric(ranges.worst),
        "best": metric(ranges.best), "me_guarded": metric(torch.where(keep_me, value, baseline)),
        "me_guarded_worst": metric(torch.where(keep_me, ranges.worst, ranges.baseline_worst)),
        "worst_guarded": metric(ranges.guarded_worst(objective)),
        "worst_guarded_me": metric(torch.where(keep_worst, value, baseline)),
    }
    sizes = parts.sampler.size_of(context).cpu()
    groups = [("all", torch.ones_like(sizes, dtype=torch.bool))]
    groups += [(f"{lo}" if lo == hi else f"{lo}-{hi}", (sizes >= lo) & (sizes <= hi)) for lo, hi in _groups(sizes)]
    rows = [{"group": label, "contexts": int(keep.sum()), "me_kept": _mean(keep_me[keep]),
             "worst_kept": _mean(keep_worst[keep]), **{k: _mean(v[keep]) for k, v in columns.items()}}
            for label, keep in groups if keep.any()]
    return {
        "task": cfg.task, "concept": cfg.concept, "profile": cfg.profile, "eps": cfg.eps,
        "relative_eps": not cfg.absolute_eps, "exact_block": cfg.exact_block, "contexts": contexts, "seed": seed,
        "source": source, "metric": objective.metric_name, "report_change": bool(objective.report_change),
        "minimize": bool(objective.minimize), "size_axis": parts.task.size_axis,
        "design_seconds": round(design_seconds, 1), "lp_seconds": round(lp_seconds, 1), "rows": rows,
        "points": {"size": sizes.tolist(), **{k: v.tolist() for k, v in columns.items()}},
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown table of a measurement."""
    better = "lower" if result["minimize"] else "higher"
    lines = [f"Task {result['task']}, {result['concept'].upper()}, eps {result['eps']} "
             f"({'relative' if result['relative_eps'] else 'absolute'}), {result['contexts']} contexts (seed "
             f"{result['seed']}, profile {result['profile']}), exact block {result['exact_block']}; designed by "
             f"{result['source']}. Metric: {result['metric']} ({better} is better"
             + ("; every number is minus the baseline's ME value" if result["report_change"] else "") + "). "
             f"LPs: {result['lp_seconds']} s.", "",
             f"| {result['size_axis']} | contexts | baseline: ME [worst, best] | designed: ME [worst, best] | "
             f"ME guard: kept, ME, worst | worst-case guard: kept, ME, worst |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['group']} | {r['contexts']} | {r['baseline_me']:+.4f} [{r['baseline_worst']:+.4f}, "
            f"{r['baseline_best']:+.4f}] | {r['me']:+.4f} [{r['worst']:+.4f}, {r['best']:+.4f}] | "
            f"{100 * r['me_kept']:.0f}%, {r['me_guarded']:+.4f}, {r['me_guarded_worst']:+.4f} | "
            f"{100 * r['worst_kept']:.0f}%, {r['worst_guarded_me']:+.4f}, {r['worst_guarded']:+.4f} |")
    return "\n".join(lines)


def scatter(result: dict[str, Any], path: Path) -> Path | None:
    """ME value against worst case per context, designed and baseline interventions (``None``: no matplotlib)."""
    try:
        import matplotlib  # optional dependency

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    p = result["points"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(p["baseline_me"], p["baseline_worst"], s=12, alpha=0.6, label="baseline intervention")
    ax.scatter(p["me"], p["worst"], s=12, alpha=0.6, label="designed intervention")
    low = min(min(p[k]) for k in ("baseline_me", "baseline_worst", "me", "worst"))
    high = max(max(p[k]) for k in ("baseline_me", "baseline_worst", "me", "worst"))
    ax.plot([low, high], [low, high], color="grey", lw=0.8, label="worst case = ME value")
    ax.set_xlabel(f"{result['metric']} at the ME equilibrium")
    ax.set_ylabel(f"{result['metric']}, worst over the eps-{result['concept'].upper()} set")
    ax.set_title(f"{result['task']}, {result['concept'].upper()}: {result['contexts']} held-out contexts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", help="whose shipped generator to measure (else its per-instance optimisation)")
    parser.add_argument("--concept", default="cce", help="with --task: which concept")
    parser.add_argument("--generator", type=Path, help="a run directory (default: the task's shipped generator)")
    parser.add_argument("--optimise", action="store_true", help="per-instance optimisation even when the task "
                        "ships a generator")
    parser.add_argument("--profile", default="paper", help="without a generator: the task's sampling profile")
    parser.add_argument("--contexts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--steps", type=int, default=200, help="per-instance optimisation steps")
    parser.add_argument("--lr", type=float, default=0.05, help="per-instance optimisation learning rate")
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="the Markdown file (the JSON and the PNG go beside it)")
    args = parser.parse_args(argv)
    if (args.task is None) == (args.generator is None):
        parser.error("give --task or --generator RUN_DIR, one of them")
    if args.optimise and args.generator is not None:
        parser.error("--optimise and --generator exclude each other")
    torch.set_num_threads(args.threads)
    try:
        if args.task is not None and not args.optimise and args.concept in shipped_concepts(args.task):
            args.generator = shipped_folder(args.task, args.concept)
        result = measure(args.generator, args.task, args.concept, args.profile, args.contexts, args.seed,
                         args.steps, args.lr, args.chunk)
    except (OSError, ValueError, LookupError, ShippedError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    text = table(result)
    print(text)
    out = args.out or HERE / "results" / f"value_range_{result['task']}_{result['concept']}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = command_line("benchmarks/value_range.py", argv or sys.argv[1:])
    figure = scatter(result, out.with_suffix(".png"))
    picture = f"\n![ME value against worst case]({figure.name})\n" if figure else ""
    write_result(out, "The designer's value over the equilibrium set", command, text, result, picture)
    print(f"written: {out}, {out.with_suffix('.json').name}" + (f", {figure.name}" if figure else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
