"""How much a task leaves on the table: a generator against per-instance optimisation and the task's bound.

    python benchmarks/per_instance.py --task contract --concept cce
    python benchmarks/per_instance.py --generator RUN_DIR --contexts 32 --steps 200

On contexts drawn from the generator's own sampling (a shipped generator's by
default, so the paper profile for the shipped ones), every context is scored
under the exact block three ways, each against the baseline intervention:

* the generator's intervention;
* the task's per-instance optimisation (what ``did design TASK FILE --optimise``
  runs: ``--steps`` steps of rate ``--lr`` through the exact block, from the
  task's own starts), which a generator trained on the distribution would have to
  beat to be worth more than per-instance search. An optimiser that takes a
  ``start`` keyword (the contract task's search does) also gets the generator's
  intervention as one more start, so this column is never worse than the
  generator's under the exact block;
* the task's bound (``DesignObjective.bound``; ``-`` where the task has none):
  no intervention beats it.

Beside the generator's column, its guarded one (per context the better of its
intervention and the baseline under the exact block) and, in the ``all`` row, the
published exact-block figure for the task and concept where
``benchmarks/paper_results.py`` lists one (the paper gives no per-size figures).

The table (overall and per size group) is printed and written to
``benchmarks/results/per_instance_TASK_CONCEPT.md`` (``--out`` elsewhere) with
the command that made it and the search's budget where the task's instance
format describes it (``describe_budget``); the same numbers go to a JSON file
beside it (``.json``), from which a table can be regenerated. Nothing here is
timed against anything else; the seconds are those of this machine.

    python benchmarks/per_instance.py --from-json A.json B.json --readme

reprints the tables of stored JSON files without computing anything and, with
``--readme``, puts them into ``README.md`` (between ``<!-- per-instance:start -->``
and ``<!-- per-instance:end -->``) and into the model card of each shipped
generator they measured (the same markers in its notes, which ``did ship
--report`` keeps).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from did_core.components import load_trained
from did_core.evaluate import generate
from did_core.plugins import create
from did_core.report import command_line, marked_section, replace_marked, within, write_result
from did_core.shipped import CARD, ShippedError, shipped_folder
from did_core.tasks import index_context

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
#: The README's and the model cards' tables sit between ``<!-- per-instance:start -->`` and ``<!-- ...:end -->``.
MARKER = "per-instance"
COLUMNS = ("generator", "guarded", "per-instance", "bound")


def published(task: str, concept: str) -> tuple[float, float | None] | None:
    """The published exact-block figure ``(mean, share improved)`` of ``benchmarks/paper_results.py``, if any."""
    spec = importlib.util.spec_from_file_location("paper_results", HERE / "paper_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.PUBLISHED.get((task, concept))
    return figures[2] if figures else None


def _double(context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in context.items()}


def _summary(objective: Any, value: torch.Tensor, baseline: torch.Tensor) -> dict[str, float]:
    """The mean metric (the change against the baseline where the task reports one) and the share improved."""
    metric = (value - baseline) if objective.report_change else value
    return {"mean": float(metric.mean()), "improved": float(objective.improved(value, baseline).double().mean())}


def _cell(summary: dict[str, float] | None, signed: bool) -> str:
    if summary is None:
        return "-"
    return f"{summary['mean']:{'+' if signed else ''}.4f} ({100 * summary['improved']:.0f}%)"


def _groups(sizes: torch.Tensor, count: int = 4) -> list[tuple[int, int]]:
    """``count`` contiguous size ranges covering the sizes present."""
    low, high = int(sizes.min()), int(sizes.max())
    width = max(1, -(-(high - low + 1) // count))
    return [(a, min(a + width - 1, high)) for a in range(low, high + 1, width)]


def measure(folder: Path, contexts: int, seed: int, steps: int, lr: float, chunk: int) -> dict[str, Any]:
    """The measurement for the generator in ``folder`` (a run directory or a shipped folder): a JSON-ready dict
    with the settings, the budget and one row per size group (see :func:`table`).

    A folder that is no run, or a task without per-instance optimisation, raises ``ValueError``.
    """
    cfg, parts, state = load_trained(folder)
    instances = parts.task.instances
    if instances is None or type(instances).optimiser is None:
        raise ValueError(f"task {cfg.task!r} has no per-instance optimisation (Task.instances / "
                         f"InstanceFormat.optimiser)")
    block = create("blocks", cfg.exact_block)
    context = _double(parts.sampler.sample(contexts, torch.Generator().manual_seed(seed)))
    x, x0 = generate(parts, context, chunk)
    objective = parts.objective
    started = time.perf_counter()
    optimised = []
    for first in range(0, contexts, chunk):
        part = index_context(context, slice(first, first + chunk))
        start = x[first:first + chunk].double()
        optimised.append(instances.optimise(part, block, parts.concept, parts.eps, steps, lr, start=start).detach())
    seconds = time.perf_counter() - started
    budget = instances.describe_budget(context, steps, start=x)
    scorer = parts.scorer(block)
    values = {name: scorer.values(context, intervention.double(), chunk)[0]
              for name, intervention in (("baseline", x0), ("generator", x), ("per-instance", torch.cat(optimised)))}
    bound = objective.bound(context)
    if bound is not None:
        values["bound"] = bound.double().cpu()
    sizes = parts.sampler.size_of(context).cpu()
    groups = [("all", torch.ones_like(sizes, dtype=torch.bool))]
    groups += [(f"{lo}" if lo == hi else f"{lo}-{hi}", (sizes >= lo) & (sizes <= hi)) for lo, hi in _groups(sizes)]
    b = values["baseline"]
    values["guarded"] = torch.where(objective.improved(values["generator"], b), values["generator"], b)
    rows = [{"group": label, "contexts": int(keep.sum()),
             **{name: _summary(objective, values[name][keep], b[keep]) if name in values else None
                for name in COLUMNS}}
            for label, keep in groups if keep.any()]
    figure = published(cfg.task, cfg.concept)
    return {
        "task": cfg.task, "concept": cfg.concept, "profile": cfg.profile, "eps": cfg.eps,
        "relative_eps": not cfg.absolute_eps, "exact_block": cfg.exact_block, "contexts": contexts, "seed": seed,
        "generator": within(folder, HERE.parent), "generator_steps": int(state.get("step", 0)), "steps": steps,
        "lr": lr,
        "generator_start": instances.takes_start, "seconds": round(seconds, 1), "budget": budget,
        "metric": objective.metric_name if objective.report_change else "value",
        "report_change": bool(objective.report_change), "size_axis": parts.task.size_axis, "rows": rows,
        "published": None if figure is None else {"mean": figure[0], "improved": figure[1]},
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`measure` result (or of the JSON written beside it)."""
    start = ", the generator's output one more start" if result["generator_start"] else ""
    lines = [
        f"{result['task']}, {result['concept'].upper()}, profile `{result['profile']}`, eps {result['eps']}"
        f" ({'relative' if result['relative_eps'] else 'absolute'}), exact block `{result['exact_block']}`;"
        f" {result['contexts']} contexts, seed {result['seed']}; generator `{result['generator']}`"
        f" ({result['generator_steps']} steps); per-instance: {result['steps']} steps, lr {result['lr']}{start}"
        f" ({result['seconds']:.0f} s on this machine). Cells: {result['metric']} against the baseline"
        f" (share improved).",
    ]
    if result.get("budget"):
        lines.append(f"Per-instance budget: {result['budget']}.")
    lines += ["", f"| {result['size_axis']} | contexts | generator | generator, guarded | per-instance optimisation "
                  f"| bound | published (exact block) |", "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        cells = [_cell(row.get(name), result["report_change"]) for name in COLUMNS]
        figure = result.get("published") if row["group"] == "all" else None
        cells.append(_published(figure, result["report_change"]))
        lines.append(f"| {row['group']} | {row['contexts']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _published(figure: dict[str, float | None] | None, signed: bool) -> str:
    if figure is None:
        return "-"
    if figure.get("improved") is None:
        return f"{figure['mean']:{'+' if signed else ''}.4f}"
    return _cell(figure, signed)


def write_tables(results: list[dict[str, Any]]) -> list[Path]:
    """Put the tables of ``results`` into the README and each measured shipped generator's model card (between
    the :data:`MARKER` markers); returns the files changed. A file without the markers is a one-line
    ``ValueError``, and no file is changed before every one has them."""
    cards: dict[Path, list[str]] = {}
    for result in results:
        card = HERE.parent / result["generator"] / CARD  # a relative folder is the repository's
        if card.is_file():
            cards.setdefault(card, []).append(table(result))
    readme = "\n\n".join(f"**{r['task']}, {r['concept'].upper()}** (`{r['command']}`):\n\n{table(r)}"
                         for r in results)
    for path in (README, *cards):
        marked_section(path, MARKER)  # every file has the markers before any is written
    replace_marked(README, MARKER, readme)
    for card, tables in cards.items():
        replace_marked(card, MARKER, "\n\n".join(tables))
    return [README, *cards]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", help="whose shipped generator to measure (not needed with --generator)")
    parser.add_argument("--concept", default="cce", help="with --task: which concept's shipped generator")
    parser.add_argument("--generator", type=Path, help="a run directory (default: the task's shipped generator)")
    parser.add_argument("--contexts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=64, help="contexts optimised (and scored) together")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="the Markdown file (the JSON goes beside it)")
    parser.add_argument("--from-json", type=Path, nargs="+", metavar="JSON",
                        help="reprint the tables of stored results; nothing is computed")
    parser.add_argument("--readme", action="store_true", help="with --from-json: put the tables into README.md "
                        "and the measured shipped generators' model cards")
    args = parser.parse_args(argv)
    if args.from_json:
        return _from_json(args.from_json, args.readme)
    if args.readme:
        parser.error("--readme needs --from-json: the README's tables come from stored results")
    if (args.task is None) == (args.generator is None):
        parser.error("give --task (its shipped generator) or --generator RUN_DIR, one of them")
    torch.set_num_threads(args.threads)
    try:
        if args.task is not None:
            args.generator = shipped_folder(args.task, args.concept)
        result = measure(args.generator, args.contexts, args.seed, args.steps, args.lr, args.chunk)
    except (OSError, ValueError, LookupError, ShippedError) as exc:  # a missing or mismatched run, an unknown task
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    text = table(result)
    print(text)
    out = args.out or HERE / "results" / f"per_instance_{result['task']}_{result['concept']}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = command_line("benchmarks/per_instance.py", argv or sys.argv[1:])
    write_result(out, "Per-instance optimisation against the generator", command, text, result)
    print(f"written: {out} and {out.with_suffix('.json').name}")
    return 0


def _from_json(paths: list[Path], readme: bool) -> int:
    try:
        results = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
        for result in results:
            print(table(result) + "\n")
        if readme:
            print("written: " + ", ".join(str(p) for p in write_tables(results)))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a missing, malformed or foreign file
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
