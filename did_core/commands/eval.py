"""``did eval``: the results table of a trained run (or a shipped generator) on held-out contexts, as Markdown
and JSON: the generator under each block, guarded, optionally polished, with plots.

Under torchrun every rank evaluates its share of the contexts; rank 0 alone reads
and writes the run (holding its lock while it evaluates) and prints. ``--from-json``
reprints the stored table without evaluating.

A shipped generator's folder is only read (no lock, no file). ``--out FILE.json``
writes ``FILE.json`` and ``FILE.md``, each checked before any work
(:func:`did_core.runs.output_file`): not a device, FIFO or directory, in a folder
that exists, and not inside a run directory or shipped folder unless ``--force``.
The held-out set's memory and time (:func:`did_core.evaluate.check_held_out`) and
the polish's workers (at most the cores this process may use) are bounded before
the evaluation starts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from did_core import distributed
from did_core.components import Components, build_components
from did_core.config import ConfigError, TrainConfig, load_yaml, resolve_train_config
from did_core.console import ArgumentParser, Command, fail, nonempty
from did_core.bounds import available_cores
from did_core.evaluate import PolishSettings, check_held_out, evaluate_generator, polish_seconds
from did_core.files import MIB, read_json_file
from did_core.hookspecs import hookimpl
from did_core.plots import per_size_bars, require_matplotlib, training_curves
from did_core.mechanism_task import option_value, run_task_name
from did_core.plugins import DEFAULT_CONCEPT, create, get_concept, get_mechanism, registry
from did_core.registry import Registry
from did_core.report import build_report, markdown_table
from did_core.results import convergence_note
from did_core.runs import OutputRefused, RunDir, atomic_write_files, json_text, output_file, output_folder
from did_core.shipped import shipped_folder

__all__ = ["build_parser", "main", "evaluate_command", "COMMAND"]


def build_parser() -> ArgumentParser:
    """The arguments of ``did eval``."""
    p = ArgumentParser(prog="did eval")
    p.add_argument("run_dir", nargs="?", help="a run directory (with --from-json also a report.json file)")
    p.add_argument("--shipped", type=nonempty, metavar="TASK",
                   help="evaluate the generator that TASK's plugin ships (instead of a run directory)")
    p.add_argument("--concept", type=nonempty, help=f"with --shipped: which concept's generator (default "
                   f"{DEFAULT_CONCEPT})")
    p.add_argument("--out", type=nonempty, metavar="FILE.json", help="write the report here as FILE.json and "
                   "FILE.md (with --shipped; a shipped generator's own folder is never written)")
    p.add_argument("--force", action="store_true", help="let --out write inside a run directory or a shipped "
                   "generator's folder")
    p.add_argument("--contexts", type=int, help="held-out contexts (default: the run's eval_contexts)")
    p.add_argument("--seed", "--eval-seed", dest="seed", type=int,
                   help="held-out seed (default: the run's eval_seed)")
    p.add_argument("--blocks", help="comma-separated block names (default: the run's block and exact block)")
    p.add_argument("--polish", action="store_true", help="also Nelder-Mead on each context's intervention")
    p.add_argument("--range", action="store_true", help="also the worst and best value over each context's whole "
                   "eps-equilibrium set (linear programs; tasks whose value is linear in the joint) and the "
                   "worst-case guard")
    p.add_argument("--polish-budget", type=int, help="function evaluations per context (default: the task's)")
    p.add_argument("--workers", type=int, help="processes for the polish (default: CPU count)")
    p.add_argument("--plots", action="store_true", help="write PNG plots to RUN_DIR/plots (needs matplotlib)")
    p.add_argument("--from-json", action="store_true", help="reprint the table from the stored report.json")
    return p


def main(argv: list[str]) -> int:
    """``did eval RUN_DIR | --shipped TASK [options]``; a mechanism task's (``--shipped NAME``, or its run) is the
    task's own."""
    mechanism = get_mechanism(option_value(argv, "--shipped")) or next(
        (m for m in (get_mechanism(run_task_name(a)) for a in argv if not a.startswith("-")) if m), None)
    if mechanism is not None:
        return mechanism.evaluate(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    with distributed.session() as world:
        return evaluate_command(args, world)


@dataclass(frozen=True)
class _Plan:
    """What one ``did eval`` evaluates: the run's config, components and checkpoint, the blocks, and the held-out
    contexts, seed and polish."""

    cfg: TrainConfig
    parts: Components
    state: dict[str, Any]
    blocks: list[str]
    contexts: int
    seed: int
    polish: PolishSettings | None


def evaluate_command(args: argparse.Namespace, world: distributed.World) -> int:
    """``did eval`` on parsed arguments; under torchrun every rank evaluates its share and rank 0 reads and writes
    the run."""
    problem = _source_problem(args)
    if problem:
        return fail(problem)
    run = _run_of(args)
    if args.from_json:
        return _reprint(run) if world.is_main else 0
    problem = _number_problem(args)
    if problem:
        return fail(problem)
    try:
        out = _out_path(args)
    except OutputRefused as exc:
        return fail(str(exc))
    plan = _plan(args, world, run)
    if world.is_main:
        _announce(run, plan, world)
    done = _evaluate(args, world, run, out, plan)
    if done is None:  # not rank 0: it has done its share
        return 0
    result, report, table = done
    print(table)
    note = convergence_note(result)
    if note:
        print(note, file=sys.stderr)
    if args.plots:
        print("plots: " + ", ".join(str(p) for p in _plots(run, out, plan, report)))
    if out is not None:
        print(f"written: {out}, {out.with_suffix('.md')}")
    elif args.shipped is None:
        print(f"written: {run.file('report.json')}, {run.file('report.md')}")
    return 0


def _source_problem(args: argparse.Namespace) -> str | None:
    """Why the flags naming what to evaluate, and where to write, do not go together (``None``: they do)."""
    if (args.run_dir is None) == (args.shipped is None):
        return "give a run directory or --shipped TASK (one of them)"
    if args.shipped is None and (args.concept or args.out or args.force):
        return "--concept, --out and --force go with --shipped TASK (a run directory's report goes into the run)"
    if args.shipped is not None and args.plots and not args.out:
        return "--plots with --shipped needs --out FILE.json (the plots go next to it)"
    return None


def _number_problem(args: argparse.Namespace) -> str | None:
    """Why a count or a list among the flags is out of range (``None``: none is)."""
    if args.contexts is not None and args.contexts < 1:
        return f"--contexts must be >= 1, got {args.contexts}"
    if args.blocks is not None and not [b for b in args.blocks.split(",") if b.strip()]:
        return "--blocks names no block (give a comma-separated list, or leave it out for the defaults)"
    if args.workers is not None and args.workers < 1:
        return f"--workers must be >= 1, got {args.workers}"
    if args.workers is not None and args.workers > available_cores():
        return (f"--workers {args.workers} is more than the {available_cores()} CPU core(s) this process may use: "
                f"refused (not capped); give at most {available_cores()}, or leave it out for one per core")
    if args.polish_budget is not None and args.polish_budget < 1:
        return f"--polish-budget must be >= 1, got {args.polish_budget}"
    return None


def _out_path(args: argparse.Namespace) -> Path | None:
    """``--out FILE.json`` checked, with ``FILE.md`` beside it and, with ``--plots``, the folder ``FILE-plots``
    (:func:`did_core.runs.output_file`); ``None`` without ``--out``."""
    if not args.out:
        return None
    out = Path(args.out)
    if out.suffix != ".json" or out.name == ".json":
        raise OutputRefused(f"--out {out} must name a FILE.json: the report is written as JSON to FILE.json and as "
                            f"Markdown to FILE.md")
    output_file(out, force=args.force)
    output_file(out.with_suffix(".md"), "--out's Markdown", force=args.force)
    if args.plots:
        output_folder(_plots_folder(out), "--out's plots folder", force=args.force)
    return out


def _plots_folder(out: Path) -> Path:
    return out.parent / f"{out.stem}-plots"


def _run_of(args: argparse.Namespace) -> RunDir:
    """The run directory to evaluate: the one given, or the shipped generator's folder (only read)."""
    if args.shipped is not None:
        return RunDir(shipped_folder(args.shipped, get_concept(args.concept or DEFAULT_CONCEPT).name))
    return RunDir(Path(args.run_dir))


def _reprint(run: RunDir) -> int:
    """``--from-json``: the table of the stored report (``run`` may be the report file itself)."""
    stored = run.path if run.path.suffix == ".json" else run.file("report.json")
    if not stored.is_file():
        return fail(f"{stored} not found: run did eval on the run directory first")
    try:
        print(markdown_table(read_json_file(stored, 64 * MIB)))  # a key twice, or over 64 MiB: refused
    except (ValueError, KeyError, TypeError) as exc:
        return fail(f"{stored} is not a DID evaluation report: {type(exc).__name__}: {exc}")
    return 0


def _read_run(run: RunDir) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's stored config and checkpoint (rank 0 reads them)."""
    if not run.file("config.yaml").exists():
        raise ConfigError(f"{run.path} is not a run directory (no config.yaml)")
    config, state = load_yaml(run.file("config.yaml")), run.load_checkpoint()
    if state is None:
        raise ConfigError(f"{run.path} has no checkpoint.pt to evaluate")
    return config, state


def _plan(args: argparse.Namespace, world: distributed.World, run: RunDir) -> _Plan:
    """The run read (rank 0) and its components built with the checkpoint loaded (every rank, failing together)."""
    config, state = distributed.on_main(world, lambda: _read_run(run))

    def prepare() -> tuple[TrainConfig, Components, list[str]]:
        cfg = resolve_train_config({}, config)
        parts = build_components(cfg)
        run.load_model(parts.generator, state)
        blocks = ([b.strip() for b in args.blocks.split(",") if b.strip()] if args.blocks
                  else list(dict.fromkeys([cfg.block, cfg.exact_block])))
        for name in blocks:
            registry("blocks").get(name)
        if args.plots and world.is_main:
            require_matplotlib()
        check_held_out(cfg, parts, blocks, args.contexts or cfg.eval_contexts, "--contexts", world=world)
        return cfg, parts, blocks

    cfg, parts, blocks = distributed.together(world, prepare)
    polish = PolishSettings(args.polish_budget or parts.task.polish_budget, args.workers or 0) if args.polish else None
    seed = cfg.eval_seed if args.seed is None else args.seed
    return _Plan(cfg, parts, state, blocks, args.contexts or cfg.eval_contexts, seed, polish)


def _announce(run: RunDir, plan: _Plan, world: distributed.World) -> None:
    """Notes on stderr before the evaluation: an unfinished run, and the polish's time bound."""
    cfg, state, polish = plan.cfg, plan.state, plan.polish
    if int(state.get("step", cfg.steps)) < cfg.steps:
        print(f"note: {run.path} stopped at step {int(state['step'])} of {cfg.steps}; evaluating its last "
              f"checkpoint (continue it with did train --resume {run.path})", file=sys.stderr)
    if polish is not None:
        sample = plan.parts.sampler.sample(1, torch.Generator().manual_seed(plan.seed))
        minutes = polish_seconds(cfg, plan.parts, sample, plan.blocks, plan.contexts, polish, world=world) / 60
        print(f"note: the local polish runs up to {polish.budget} evaluations per context x {plan.contexts} contexts "
              f"x {len(plan.blocks)} block(s) on {polish.worker_count(world) * world.size} worker(s): at most about "
              f"{minutes:.1f} min (--polish-budget lowers it)", file=sys.stderr)


def _evaluate(args: argparse.Namespace, world: distributed.World, run: RunDir, out: Path | None,
              plan: _Plan) -> tuple[Any, dict[str, Any], str] | None:
    """Evaluate (every rank its share) and, on rank 0, write the report; rank 0 gets the result, the report and
    its table, the other ranks ``None``. Rank 0 holds the run's lock meanwhile (not while a ``did train``, or
    another ``did eval``, writes it), unless it evaluates a shipped generator (whose folder is only read)."""
    cfg = plan.cfg
    writes_run = args.shipped is None
    if writes_run:
        distributed.on_main(world, run.acquire)
    try:
        result = evaluate_generator(cfg, plan.parts, plan.blocks, contexts=plan.contexts, seed=plan.seed,
                                    polish=plan.polish, world=world, ranges=args.range)
        if not world.is_main:
            return None
        report = build_report(cfg.task, cfg.model_dump(), result, plan.contexts, plan.seed, ["eval", *args.argv],
                              world_size=world.size, trained_steps=int(plan.state.get("step", cfg.steps)))
        table = markdown_table(report)
        _write_report(args, run, out, report, table)
    finally:
        if world.is_main and writes_run:
            run.release()
    return result, report, table


def _write_report(args: argparse.Namespace, run: RunDir, out: Path | None, report: dict[str, Any],
                  table: str) -> None:
    """The report as JSON and Markdown: to ``--out``, or into the run (never into a shipped generator's folder)."""
    if out is not None:
        atomic_write_files({out: json_text(report).encode(), out.with_suffix(".md"): (table + "\n").encode()})
    elif args.shipped is None and run.replace_keeping_previous({"report.json": json_text(report),
                                                                 "report.md": table + "\n"}):
        # The previous report stays readable next to the new one (and in place if the new one cannot be written).
        print(f"note: the previous report is kept as {run.file('report.previous.json').name} / .md",
              file=sys.stderr)


def _plots(run: RunDir, out: Path | None, plan: _Plan, report: dict[str, Any]) -> list[Path]:
    """``--plots``: the per-size bars, the training curves and the task's own plots, next to the report."""
    folder = _plots_folder(out) if out is not None else run.file("plots")
    folder.mkdir(exist_ok=True)
    written = [per_size_bars(report, folder / "per_size.png")]
    if run.metrics():
        written.append(training_curves(run.metrics(), folder / "training_curves.png"))
    parts = plan.parts
    exact = create("blocks", plan.cfg.exact_block)
    written += parts.objective.extra_plots(parts.sampler, parts.generator, parts.scorer(exact).solve, folder)
    return written


COMMAND = Command(main, "evaluate a trained run on held-out contexts: blocks, guarded, polish, plots", build_parser)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("eval", COMMAND)
