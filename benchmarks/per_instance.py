"""How much a task leaves on the table: a generator against per-instance optimisation and the task's bound.

    python benchmarks/per_instance.py --task contract --concept cce
    python benchmarks/per_instance.py --generator RUN_DIR --contexts 32 --steps 200

On contexts drawn from the generator's own sampling (a shipped generator's by
default, so the paper profile for the shipped ones), every context is scored
under the exact block three ways, each against the baseline intervention:

* the generator's intervention;
* the task's per-instance optimisation (what ``did design TASK FILE --optimise``
  runs: ``--steps`` gradient steps of rate ``--lr`` through the exact block, from
  the task's own starts), which a generator trained on the distribution would
  have to beat to be worth more than per-instance search;
* the task's bound (``DesignObjective.bound``; ``-`` where the task has none):
  no intervention beats it.

The table (overall and per size group) is printed and written to
``benchmarks/results/per_instance_TASK_CONCEPT.md`` (``--out`` elsewhere) with
the command that made it. Nothing here is timed against anything else; the
seconds are those of this machine.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent


def _double(context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in context.items()}


def _cell(objective: Any, value: torch.Tensor, baseline: torch.Tensor) -> str:
    metric = (value - baseline) if objective.report_change else value
    share = objective.improved(value, baseline).double().mean()
    return f"{float(metric.mean()):{'+' if objective.report_change else ''}.4f} ({100 * float(share):.0f}%)"


def _groups(sizes: torch.Tensor, count: int = 4) -> list[tuple[int, int]]:
    """``count`` contiguous size ranges covering the sizes present."""
    low, high = int(sizes.min()), int(sizes.max())
    width = max(1, -(-(high - low + 1) // count))
    return [(a, min(a + width - 1, high)) for a in range(low, high + 1, width)]


def measure(folder: Path, contexts: int, seed: int, steps: int, lr: float, chunk: int) -> tuple[str, str, str]:
    """The Markdown table for the generator in ``folder`` (a run directory or a shipped folder), its task and concept.

    A folder that is no run, or a task without per-instance optimisation, raises ``ValueError``.
    """
    from did_core.components import build_components
    from did_core.config import load_yaml, resolve_train_config
    from did_core.evaluate import generate, values_under
    from did_core.plugins import create
    from did_core.runs import RunDir
    from did_core.tasks import index_context

    run = RunDir(folder)
    cfg = resolve_train_config({}, load_yaml(run.file("config.yaml")))
    parts = build_components(cfg)
    state = run.load_checkpoint()
    if state is None:
        raise ValueError(f"{folder} has no checkpoint")
    run.load_model(parts.generator, state)
    instances = parts.task.instances
    if instances is None:
        raise ValueError(f"task {cfg.task!r} has no per-instance optimisation (Task.instances)")
    block = create("blocks", cfg.exact_block)
    context = _double(parts.sampler.sample(contexts, torch.Generator().manual_seed(seed)))
    x, x0 = generate(parts, context, chunk)
    objective = parts.objective
    started = time.perf_counter()
    optimised = []
    for start in range(0, contexts, chunk):
        part = index_context(context, slice(start, start + chunk))
        found = instances.optimise(part, block, cfg.concept, parts.eps, steps, lr)
        if found is None:
            raise ValueError(f"task {cfg.task!r} has no per-instance optimisation (InstanceFormat.optimise)")
        optimised.append(found.detach())
    seconds = time.perf_counter() - started
    values = {name: values_under(cfg, parts, block, context, intervention.double(), chunk)[0]
              for name, intervention in (("baseline", x0), ("generator", x), ("per-instance", torch.cat(optimised)))}
    bound = objective.bound(context)
    sizes = parts.sampler.size_of(context).cpu()
    axis = parts.task.size_axis
    lines = [
        f"{cfg.task}, {cfg.concept.upper()}, profile `{cfg.profile}`, eps {cfg.eps}"
        f" ({'absolute' if cfg.absolute_eps else 'relative'}), exact block `{cfg.exact_block}`; {contexts} contexts,"
        f" seed {seed}; generator `{folder}` ({int(state.get('step', 0))} steps); per-instance: {steps} steps, "
        f"lr {lr} ({seconds:.0f} s on this machine). Cells: "
        f"{objective.metric_name if objective.report_change else 'value'} against the baseline (share improved).",
        "",
        f"| {axis} | contexts | generator | per-instance optimisation | bound |",
        "|---|---|---|---|---|",
    ]
    b = values["baseline"]
    rows = [("all", torch.ones_like(sizes, dtype=torch.bool))]
    rows += [(f"{lo}" if lo == hi else f"{lo}-{hi}", (sizes >= lo) & (sizes <= hi)) for lo, hi in _groups(sizes)]
    for label, keep in rows:
        if not keep.any():
            continue
        cells = [_cell(objective, values[n][keep], b[keep]) for n in ("generator", "per-instance")]
        cells.append("-" if bound is None else _cell(objective, bound.double()[keep], b[keep]))
        lines.append(f"| {label} | {int(keep.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines), cfg.task, cfg.concept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", help="whose shipped generator to measure (not needed with --generator)")
    parser.add_argument("--concept", default="cce", help="with --task: which concept's shipped generator")
    parser.add_argument("--generator", type=Path, help="a run directory (default: the task's shipped generator)")
    parser.add_argument("--contexts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=16, help="contexts optimised together")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if (args.task is None) == (args.generator is None):
        parser.error("give --task (its shipped generator) or --generator RUN_DIR, one of them")
    torch.set_num_threads(args.threads)
    from did_core.runs import atomic_write_text
    from did_core.shipped import ShippedError, shipped_folder

    try:
        if args.task is not None:
            args.generator = shipped_folder(args.task, args.concept)
        text, task, concept = measure(args.generator, args.contexts, args.seed, args.steps, args.lr, args.chunk)
    except (OSError, ValueError, LookupError, ShippedError) as exc:  # a missing or mismatched run, an unknown task
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(text)
    out = args.out or HERE / "results" / f"per_instance_{task}_{concept}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/per_instance.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    atomic_write_text(out, f"# Per-instance optimisation against the generator\n\n`{command}`\n\n{text}\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
