"""``did design TASK INSTANCE_FILE``: an intervention for one problem instance, and what it does to the equilibrium.

Why: training learns a map from contexts to interventions, but a designer often
holds one concrete instance (a file) and wants to see what an intervention does
to it. Any task offers this by setting ``Task.instances`` to an
:class:`~did_core.instance_format.InstanceFormat`: how its files are read, how an intervention is optimised
for one instance (optional), and how interventions and joints are shown with the
instance's own names. The command itself knows no task and no block by name.

Where the intervention comes from:

* ``--generator RUN`` (alias ``--run-dir``): the trained generator of a ``did train
  --task TASK`` run (concept, eps and the exact block default to the run's);
* otherwise, when the task ships a generator for the concept
  (:mod:`did_core.shipped`), that generator, read from its folder exactly as a run
  (and never written);
* otherwise, or with ``--optimise``, :meth:`InstanceFormat.optimise` through the
  exact block (``--block``, default the preferred installed exact block for the
  concept), ``--steps`` steps of rate ``--lr``.

Then, by default, the guard: the exact block solves the game with and without the
intervention, and an intervention that is worse than none (beyond round-off, see
:data:`GUARD_TOLERANCE`) is replaced by the objective's ``baseline_intervention``
(``--unguarded``: kept as it is). ``--polish BUDGET`` then refines the chosen
intervention on this instance by Nelder-Mead under the exact block
(:meth:`did_core.scoring.Scorer.polish`, as ``did eval --polish``), at most
``BUDGET`` function evaluations, never ending worse than it started.

For each block -- the exact one, the run's block, and every installed non-exact
block that supports the concept (optional: its failure is reported, not fatal)
-- it reports the equilibrium without (the objective's ``baseline_intervention``)
and with the intervention, and the objective's ``value`` before and after.

Shapes: a context is a batch of one (every tensor ``[1, ...]``); an intervention
``[1, ...]`` as a generator returns it; a joint ``[A_1..A_N]`` cut to the real actions.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core import shipped
from did_core.blocks import EquilibriumBlock, capabilities_of
from did_core.bounds import TooLarge, duration
from did_core.components import load_generator
from did_core.concepts import Concept
from did_core.config import TrainConfig, resolve_train_config
from did_core.console import ArgumentParser, Command, fail, nonempty, yaml_mapping
from did_core.equilibria import Epsilon
from did_core.hookspecs import hookimpl
from did_core.instance_files import InstanceError
from did_core.instance_format import InstanceFormat
from did_core.plugins import (DEFAULT_CONCEPT, create, exact_block_for, exact_block_named, get_concept, get_mechanism,
                              get_task, registry)
from did_core.registry import Registry, call_factory
from did_core.equilibrium_range import instance_ranges, range_entry
from did_core.scoring import Scorer
from did_core.tasks import Context, DesignObjective, Task

__all__ = ["build_parser", "main", "design", "design_report", "GUARD_TOLERANCE", "MAX_DESIGN_SECONDS", "COMMAND"]

#: the guard replaces an intervention only when it is worse than the baseline by more than this
#: (relative to ``max(1, |baseline value|)``): equal values up to round-off are not "worse".
GUARD_TOLERANCE = 1e-9

#: the per-instance optimisation (``--steps``) and the polish (``--polish BUDGET``) are each refused when estimated
#: to take longer than this, in seconds.
MAX_DESIGN_SECONDS = 3600.0


def build_parser() -> ArgumentParser:
    """The arguments of ``did design``."""
    parser = ArgumentParser(prog="did design")
    parser.add_argument("task", metavar="TASK", help="a task whose plugin reads instance files (e.g. contract)")
    parser.add_argument("instance", metavar="INSTANCE_FILE",
                        help="an instance file of that task (e.g. examples/christmas_tree.json)")
    parser.add_argument("--generator", "--run-dir", dest="generator", type=nonempty, metavar="RUN_DIR",
                        help="use the generator of this trained run (default: the generator the task ships for "
                        "the concept, if any, else per-instance optimisation)")
    parser.add_argument("--optimise", "--optimize", dest="optimise", action="store_true",
                        help="per-instance optimisation even when the task ships a generator")
    parser.add_argument("--fast", action="store_true",
                        help="the generator's answer alone (where the task's per-instance search can start from "
                        "it, did design refines it by default)")
    parser.add_argument("--unguarded", action="store_true",
                        help="keep the intervention even where the exact block says it is worse than none")
    parser.add_argument("--polish", type=int, metavar="BUDGET",
                        help="refine the intervention on this instance by Nelder-Mead under the exact block, "
                        "at most BUDGET function evaluations")
    parser.add_argument("--block", type=nonempty, help="exact block to optimise, guard, polish and report with "
                        "(default: the run's exact block, else the preferred installed exact block for the concept)")
    parser.add_argument("--concept", type=nonempty,
                        help="equilibrium concept (default: the run's, else the default concept)")
    parser.add_argument("--concept-options", type=yaml_mapping, default={}, metavar="YAML",
                        help="options of the concept, e.g. '{cap: 0.3}' (default: the run's for the run's"
                        " concept; did plugins lists them)")
    parser.add_argument("--eps", type=float, help="equilibrium tolerance (default: the run's, else the task's, e.g. 0.05 relative)")
    parser.add_argument("--absolute", action="store_true", help="eps is absolute, not relative to the payoff scale")
    parser.add_argument("--steps", type=int, default=200, help="per-instance optimisation steps (default 200)")
    parser.add_argument("--lr", type=float, default=0.05, help="per-instance optimisation learning rate (default 0.05)")
    parser.add_argument("--range", action="store_true", help="also the worst and best value over the whole "
                        "eps-equilibrium set, without and with the intervention (tasks whose value is linear in the "
                        "joint), and what the worst-case guard keeps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str]) -> int:
    """``did design TASK INSTANCE_FILE [options]``; a mechanism task's command line is the task's own."""
    mechanism = get_mechanism(next((a for a in argv if not a.startswith("-")), None))
    if mechanism is not None:
        return mechanism.design(argv)
    return design(build_parser().parse_args(argv))


@dataclass
class _Design:
    """What ``did design`` found for one instance: the intervention ``x [1, ...]``, where it came from, the guard's
    and the polish's records, and per block the equilibria without and with it."""

    context: Context
    objective: DesignObjective
    concept: Concept
    eps: Epsilon
    exact: str
    source: str
    x: Tensor
    guard: dict[str, Any] | None
    polish: dict[str, Any] | None
    report: dict[str, Any]


def design(args: argparse.Namespace) -> int:
    """``did design`` on parsed arguments; returns the exit code (user errors: one line, 2)."""
    task = get_task(args.task)
    instances = task.instances
    if instances is None:
        return fail(f"task {args.task} cannot read instance files (its plugin sets no Task.instances)")
    problem = _flag_problem(args)
    if problem:
        return fail(problem)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small instance: extra intra-op threads only add overhead
    try:
        found = _design(args, task, instances)
    finally:
        torch.set_num_threads(threads)
    summary = instances.summary(found.context)
    bad = _not_finite({**summary, "intervention": found.x[0].tolist(), "blocks": found.report, "guard": found.guard,
                       "polish": found.polish})
    if bad is not None:  # numbers too large (or small) for the task's arithmetic: no answer to print
        return fail(f"{args.instance}: the result is not finite ({bad}): the instance's numbers are too large or too "
                    f"small for task {args.task} to compute with; rescale them")
    if args.json:
        print(json.dumps(_as_json(args, found, summary)))
    else:
        _print_design(args, instances, found)
    return 0


def _flag_problem(args: argparse.Namespace) -> str | None:
    """Why the flags do not go together (``None``: they do)."""
    if args.steps < 0 or not 0 < args.lr < math.inf:
        return f"--steps must be >= 0 and --lr > 0 and finite, got {args.steps} and {args.lr:g}"
    if args.polish is not None and args.polish < 1:
        return f"--polish BUDGET must be >= 1 function evaluation, got {args.polish}"
    if args.optimise and args.generator:
        return "--optimise and --generator exclude each other: the intervention comes from one of them"
    if args.optimise and args.fast:
        return "--optimise and --fast exclude each other: --fast keeps the generator's answer as it is"
    return None


def _design(args: argparse.Namespace, task: Task, instances: InstanceFormat) -> _Design:
    """The instance read, its intervention (a run's or shipped generator's, else optimised), guarded and
    polished, and the report of every block."""
    context = _loaded(instances, Path(args.instance))
    cfg, objective, x, source = _generated(args, task, context)
    concept = get_concept(args.concept or (cfg.concept if cfg else DEFAULT_CONCEPT),
                          args.concept_options or (cfg.concept_options if cfg and not args.concept else {}))
    tolerance = cfg or resolve_train_config({"task": args.task})  # without a run: the task's own default
    eps = Epsilon(args.eps if args.eps is not None else tolerance.eps,
                  relative=not (args.absolute or tolerance.absolute_eps))
    exact = (exact_block_named(args.block, concept.name, "--block") if args.block
             else (cfg.exact_block if cfg else None) or exact_block_for(concept.name))
    blocks, failed = _blocks(exact, cfg, concept)
    searches = x is None or (instances.takes_start and not args.fast)
    work = {"--steps": args.steps if searches else 0, "--polish": args.polish or 0}
    _check_time(objective, exact, blocks[exact], context, concept, eps, work,
                instances.solves_per_step(context, start=x is not None))
    if x is None:
        x = instances.optimise(context, blocks[exact], concept, eps, args.steps, args.lr)
        if x is None:
            raise ValueError(f"task {args.task} has no per-instance optimisation: give --generator RUN, "
                             f"a trained run of task {args.task}")
        why = "asked for" if args.optimise else f"task {args.task} ships no generator for {concept.name}"
        source = _searched(instances, exact, args, context, why)
    elif instances.takes_start and not args.fast:
        start = x.detach().double()
        x = instances.optimise(context, blocks[exact], concept, eps, args.steps, args.lr, start=start)
        source = _searched(instances, exact, args, context, f"from the {source}, refined; --fast: it alone", start)
    x = x.detach()
    x = x.double() if x.is_floating_point() else x
    found = _Design(context, objective, concept, eps, exact, source, x, None, None, {})
    if not args.unguarded:
        _apply_guard(found, blocks[exact])
    if args.polish is not None:
        found.x, before, after = _polish(objective, blocks[exact], context, found.x, concept, eps, args.polish)
        found.polish = {"block": exact, "budget": args.polish, "value_before": before, "value_after": after}
    optional = tuple(name for name in blocks if name != exact and (cfg is None or name != cfg.block))
    found.report = {**failed, **design_report(objective, context, found.x, blocks, concept, eps, optional)}
    if args.range:
        ranges = instance_ranges(objective, context, found.x, concept, eps)
        for entry in found.report.values():
            if "error" not in entry:
                entry.update(range_entry(objective, ranges, entry["value_without"]))
    return found


def _searched(instances: InstanceFormat, exact: str, args: argparse.Namespace, context: Context, why: str,
              start: Tensor | None = None) -> str:
    """The source line of a per-instance search: its method, block, steps and rate, why it ran, and its budget."""
    budget = instances.describe_budget(context, args.steps, start=start)
    return (f"{instances.method} through {exact}, {args.steps} steps, lr {args.lr:g} ({why})"
            + (f"; {budget}" if budget else ""))


def _check_time(objective: DesignObjective, name: str, block: EquilibriumBlock, context: Context,
                concept: Concept, eps: Epsilon, work: dict[str, int], per_step: int = 1) -> None:
    """Refuse (:class:`~did_core.bounds.TooLarge`) a flag of ``work`` (flag -> solves it asks for: optimisation
    steps, polish evaluations) estimated to take over :data:`MAX_DESIGN_SECONDS` on this instance, before it starts.

    A solve under ``block`` is timed: of the instance for the polish, of ``per_step`` copies of it
    solved together for a step of the optimisation (a multi-start search's batch,
    :meth:`~did_core.instance_format.InstanceFormat.solves_per_step`), counted as two (its forward
    and backward pass); so the estimate is a lower bound. ``name`` is the block's, for the message.
    """
    for flag, count in work.items():
        if not count:
            continue
        copies = per_step if flag == "--steps" else 1
        batch = {k: v.expand(copies, *v.shape[1:]) for k, v in context.items()}
        start = time.perf_counter()
        with torch.no_grad():
            _solve(objective, block, batch, objective.baseline_intervention(batch), concept, eps)
        each = max(time.perf_counter() - start, 1e-6) * (2 if flag == "--steps" else 1)
        if count * each > MAX_DESIGN_SECONDS:
            what = f"a step ({copies} solves together)" if flag == "--steps" else "one solve"
            raise TooLarge(f"{flag} {count} would take at least about {duration(count * each)} on this instance "
                           f"({what} under {name} takes {1000 * each:.2g} ms), over the bound of "
                           f"{duration(MAX_DESIGN_SECONDS)}: give {flag} {int(MAX_DESIGN_SECONDS // each)} or fewer")


def _loaded(instances: InstanceFormat, path: Path) -> Context:
    """The instance in ``path``; an error that does not name the file yet (e.g. two players of one name, refused
    by :class:`~did_core.instance_format.NamedContext`) is prefixed with it."""
    try:
        return instances.load(path)
    except InstanceError as exc:
        if str(path) in str(exc):
            raise
        raise InstanceError(f"{path}: {exc}") from None


def _generated(args: argparse.Namespace, task: Task,
               context: Context) -> tuple[TrainConfig | None, DesignObjective, Tensor | None, str]:
    """The run's config, the objective, the intervention and its source when a generator designs it (``--generator
    RUN``, else the one the task ships for the concept unless ``--optimise``); else ``None``, the task's objective,
    ``None`` and ``""`` (the intervention is optimised for the instance)."""
    folder, source = None, ""
    if args.generator:
        folder, source = Path(args.generator), f"generator of {args.generator}"
    elif not args.optimise:
        wanted = get_concept(args.concept or DEFAULT_CONCEPT).name
        if wanted in shipped.shipped_concepts(args.task):
            folder, source = shipped.shipped_folder(args.task, wanted), f"shipped generator ({args.task}, {wanted})"
    if folder is None:
        return None, call_factory(f"the objective of task {args.task!r}", task.objective), None, ""
    cfg, objective, x = _from_run(folder, args.task, context)
    return cfg, objective, x, source


def _apply_guard(found: _Design, block: EquilibriumBlock) -> None:
    """The guard: under the exact ``block``, an intervention worse than none is replaced by the baseline."""
    worse, v0, v1 = _guard(found.objective, block, found.context, found.x, found.concept, found.eps)
    found.guard = {"block": found.exact, "value_without": v0, "value_with": v1,
                   "kept": "baseline" if worse else "intervention"}
    if worse:
        found.x = found.objective.baseline_intervention(found.context).detach().to(found.x.dtype)


def _guarded(found: _Design) -> bool:
    return found.guard is not None and found.guard["kept"] == "baseline"


def _as_json(args: argparse.Namespace, found: _Design, summary: dict[str, Any]) -> dict[str, Any]:
    """``--json``: the instance's facts, where the intervention came from, the settings, and every block's report."""
    objective, eps = found.objective, found.eps
    return {**summary, "task": args.task, "instance": args.instance,
            "source": found.source, "concept": found.concept.name, "eps": eps.value, "relative_eps": eps.relative,
            "metric": objective.metric_name, "minimize": objective.minimize,
            "report_change": objective.report_change, "guarded": _guarded(found), "guard": found.guard,
            "polish": found.polish, "intervention": found.x[0].tolist(), "blocks": found.report}


def _print_design(args: argparse.Namespace, instances: InstanceFormat, found: _Design) -> None:
    """The text report: the instance, the intervention, the guard and the polish, then each block's equilibria."""
    objective, context, guard, polish, exact = found.objective, found.context, found.guard, found.polish, found.exact
    games, mask = objective.induce(context, objective.baseline_intervention(context))
    sizes = [int(n) for n in mask[0].sum(-1)] if mask is not None else list(games.shape[2:])
    print(f"{args.task} instance: {args.instance}  players: {len(sizes)}  actions: {sizes}")
    print(f"{instances.noun} ({found.source}):")
    print("\n".join("  " + line for line in instances.describe(context, found.x)))
    if guard is not None and _guarded(found):
        print(f"guard: under {exact}, {instances.value_name} with the {instances.noun} {guard['value_with']:.4f} is "
              f"worse than {guard['value_without']:.4f} ({instances.baseline}): kept no intervention "
              f"({instances.baseline}); --unguarded keeps the {instances.noun}")
    if polish is not None:
        print(f"polish: Nelder-Mead under {exact}, at most {polish['budget']} evaluations: {instances.value_name} "
              f"{polish['value_before']:.4f} -> {polish['value_after']:.4f}")
    for name, r in found.report.items():
        _print_block(instances, found, name, r)


def _print_block(instances: InstanceFormat, found: _Design, name: str, r: dict[str, Any]) -> None:
    """One block's part of the text report: the equilibria without and with the intervention, and the values."""
    mode = "relative" if found.eps.relative else "absolute"
    better = "lower" if found.objective.minimize else "higher"
    print(f"\nblock {name} ({found.concept.name}, {mode} eps {found.eps.value:g}"
          f"{', optional' if r['optional'] else ''}):")
    if "error" in r:
        print(f"  unavailable: {r['error']}")
        return
    for key, label in (("without", instances.baseline), ("with", f"with the {instances.noun}")):
        print(f"  equilibrium, {label}:")
        sigma = torch.tensor(r[f"equilibrium_{key}"], dtype=torch.float64)
        print("\n".join("    " + line for line in instances.describe_joint(found.context, sigma)))
    change = f", change {r['value_change']:+.4f}" if found.objective.report_change else ""
    print(f"  {instances.value_name}: {r['value_without']:.4f} ({instances.baseline}) -> {r['value_with']:.4f} "
          f"(with the {instances.noun}){change}; {better} is better")
    if "range_with" in r:
        (w0, b0), (w1, b1), guard = r["range_without"], r["range_with"], r["worst_case_guard"]
        unit = f"{found.objective.metric_name}, " if found.objective.report_change else ""
        print(f"  over the whole eps-equilibrium set ({unit}[worst, best]): [{w0:.4f}, {b0:.4f}] "
              f"({instances.baseline}) -> [{w1:.4f}, {b1:.4f}] (with the {instances.noun}); the worst-case guard "
              f"keeps the {guard['kept']}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _not_finite(value: Any, where: str = "") -> str | None:
    """Where the first NaN or infinite number of a report is (``None`` when every number is finite)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, (dict, list, tuple)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            found = _not_finite(item, f"{where}.{key}".lstrip(".") if isinstance(key, str) else f"{where}[{key}]")
            if found is not None:
                return found
    return None


def _from_run(folder: Path, task: str, context: Context) -> tuple[TrainConfig, DesignObjective, Tensor]:
    """The config, objective and generator's intervention ``[1, ...]`` of the run folder ``folder`` of ``task``.

    ``folder`` is a run directory or a shipped generator's folder (the same layout:
    ``config.yaml`` and ``checkpoint.pt``); it is only read.
    """
    cfg, objective, generator = load_generator(folder, task)
    try:
        with torch.no_grad():
            x = generator(context)
    except (RuntimeError, ValueError, IndexError) as exc:  # e.g. an instance larger than the generator handles
        raise ValueError(f"the generator in {folder} cannot answer this instance ({_one_line(exc)[:200]}); "
                         f"--optimise designs for it by per-instance optimisation instead") from None
    return cfg, objective, x


def _solve(objective: DesignObjective, block: EquilibriumBlock, context: Context, x: Tensor, concept: Concept,
           eps: Epsilon) -> tuple[Tensor, float]:
    """The real joint ``[A_1..A_N]`` of the game induced by ``x`` under ``block``, and the objective's value."""
    games, mask = objective.induce(context, x)
    eq = block(games.double(), mask, concept=concept, eps=eps)
    sizes = [int(n) for n in mask[0].sum(-1)] if mask is not None else list(games.shape[2:])
    sigma = eq.sigma[0].detach().double()[tuple(slice(0, n) for n in sizes)]
    return sigma, float(objective.value(context, x, eq)[0])


def _guard(objective: DesignObjective, block: EquilibriumBlock, context: Context, x: Tensor, concept: Concept,
           eps: Epsilon) -> tuple[bool, float, float]:
    """Whether ``x`` is worse than the baseline under ``block`` (beyond round-off), and both values."""
    with torch.no_grad():
        v0 = _solve(objective, block, context, objective.baseline_intervention(context), concept, eps)[1]
        v1 = _solve(objective, block, context, x, concept, eps)[1]
    worse = bool(objective.improved(torch.tensor(v0), torch.tensor(v1)))
    return worse and abs(v1 - v0) > GUARD_TOLERANCE * max(1.0, abs(v0)), v0, v1


def _polish(objective: DesignObjective, block: EquilibriumBlock, context: Context, x: Tensor,
            concept: Concept, eps: Epsilon, budget: int) -> tuple[Tensor, float, float]:
    """``x`` refined by Nelder-Mead under ``block`` (:meth:`did_core.scoring.Scorer.polish`); the values before
    and after."""
    scorer = Scorer(objective, block, concept, eps)
    polished = scorer.polish(context, x, budget).detach()
    return polished, scorer.value(context, x), scorer.value(context, polished)


def design_report(objective: DesignObjective, context: Context, intervention: Tensor,
                  blocks: dict[str, EquilibriumBlock], concept: Concept, eps: Epsilon,
                  optional: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Per block: the equilibria and values without (the baseline) and with ``intervention [1, ...]``.

    A block named in ``optional`` that fails is reported as ``{"error": message}``.
    """
    baseline = objective.baseline_intervention(context)
    out: dict[str, dict[str, Any]] = {}
    for name, block in blocks.items():
        try:
            with torch.no_grad():
                (s0, v0), (s1, v1) = (_solve(objective, block, context, x, concept, eps)
                                      for x in (baseline, intervention))
        except Exception as exc:  # noqa: BLE001 - an optional block must not take the report down
            if name not in optional:
                raise
            out[name] = {"optional": True, "error": _one_line(exc)}
            continue
        out[name] = {
            "optional": name in optional,
            "equilibrium_without": s0.tolist(),
            "equilibrium_with": s1.tolist(),
            "value_without": v0,
            "value_with": v1,
            "value_change": v1 - v0,
            "improved": bool(objective.improved(torch.tensor(v1), torch.tensor(v0))),
        }
    return out


def _blocks(exact: str, cfg: TrainConfig | None, concept: Concept) -> tuple[dict[str, Any], dict[str, Any]]:
    """The blocks to report with (optional non-exact ones first, the exact one last), and optional failures."""

    required = list(dict.fromkeys(([cfg.block] if cfg else []) + [exact]))
    optional = [e.name for e in registry("blocks") if e.name not in required
                and not capabilities_of(e.value).exact and capabilities_of(e.value).supports(concept.name)]
    blocks: dict[str, Any] = {}
    failed: dict[str, Any] = {}
    for name in optional + required:
        options = cfg.block_options if cfg and name == cfg.block else {}
        try:
            block = create("blocks", name, **options)
        except Exception as exc:  # noqa: BLE001 - an optional block may be broken
            if name in required:
                raise
            failed[name] = {"optional": True, "error": _one_line(exc)}
            continue
        if name in required or capabilities_of(block).supports(concept.name):
            blocks[name] = block
    return blocks, failed


COMMAND = Command(main, "an intervention for one instance file of a task, and the equilibrium it induces under "
                  "each block", build_parser)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("design", COMMAND)
