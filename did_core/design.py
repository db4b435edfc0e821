"""``did design TASK INSTANCE_FILE``: an intervention for one problem instance, and what it does to the equilibrium.

Why: training learns a map from contexts to interventions, but a designer often
holds one concrete instance (a file) and wants to see what an intervention does
to it. Any task offers this by setting ``Task.instances`` to an
:class:`InstanceFormat`: how its files are read, how an intervention is optimised
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
(:func:`did_core.evaluate.polish_context`, as ``did eval --polish``), at most
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
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from did_core.equilibria import Epsilon
from did_core.tasks import Context

if TYPE_CHECKING:
    from did_core.blocks import EquilibriumBlock
    from did_core.config import TrainConfig
    from did_core.tasks import DesignObjective

__all__ = ["InstanceFormat", "add_arguments", "run", "design_report", "GUARD_TOLERANCE"]

#: the guard replaces an intervention only when it is worse than the baseline by more than this
#: (relative to ``max(1, |baseline value|)``): equal values up to round-off are not "worse".
GUARD_TOLERANCE = 1e-9


class InstanceFormat(ABC):
    """How ``did design`` reads one instance of a task and shows what it computes.

    The class attributes name things in the printed report: ``noun`` the
    intervention (e.g. "contracts"), ``baseline`` the objective's baseline
    intervention (e.g. "no contract"), ``value_name`` the objective's value (e.g.
    "principal's utility"), ``method`` how :meth:`optimise` works.
    """

    noun: str = "intervention"
    baseline: str = "baseline intervention"
    value_name: str = "value"
    method: str = "per-instance optimisation"

    @abstractmethod
    def load(self, path: Path) -> Context:
        """The instance in ``path`` as a batch of one context (every tensor ``[1, ...]``).

        Malformed input raises ``ValueError`` with a one-line message naming the problem.
        """

    def optimise(self, context: Context, block: "EquilibriumBlock", concept: str, eps: Epsilon,
                 steps: int, lr: float) -> Tensor | None:
        """An intervention ``[1, ...]`` optimised for ``context`` through ``block`` (``steps`` steps of rate ``lr``).

        Default ``None``: the task has no per-instance optimisation (then ``did design`` needs a generator:
        ``--generator RUN`` or one the task ships).
        """
        return None

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """Lines showing an intervention ``[1, ...]``; default: its entries, one line per last-axis row."""
        x = intervention[0].detach().double()
        if x.dim() <= 1:
            return ["  ".join(f"{float(v):.4f}" for v in x.reshape(-1))]
        lines = [f"shape {list(x.shape)} (rows: the last axis)"]
        for index in torch.cartesian_prod(*[torch.arange(n) for n in x.shape[:-1]]).reshape(-1, x.dim() - 1).tolist():
            lines.append(f"[{', '.join(map(str, index))}]  " + "  ".join(f"{float(v):.4f}" for v in x[tuple(index)]))
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """Lines showing a joint ``[A_1..A_N]`` (real actions only); default: actions numbered from 1."""
        from did_core.cli import _format_joint

        return _format_joint(sigma.detach().double()).splitlines()

    def summary(self, context: Context) -> dict[str, Any]:
        """JSON-ready facts about the instance added to ``--json`` output (e.g. names); default none."""
        return {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``did design``."""
    from did_core.cli import nonempty

    parser.add_argument("task", metavar="TASK", help="a task whose plugin reads instance files (e.g. contract)")
    parser.add_argument("instance", metavar="INSTANCE_FILE",
                        help="an instance file of that task (e.g. examples/christmas_tree.json)")
    parser.add_argument("--generator", "--run-dir", dest="generator", type=nonempty, metavar="RUN_DIR",
                        help="use the generator of this trained run (default: the generator the task ships for "
                        "the concept, if any, else per-instance optimisation)")
    parser.add_argument("--optimise", "--optimize", dest="optimise", action="store_true",
                        help="per-instance optimisation even when the task ships a generator")
    parser.add_argument("--unguarded", action="store_true",
                        help="keep the intervention even where the exact block says it is worse than none")
    parser.add_argument("--polish", type=int, metavar="BUDGET",
                        help="refine the intervention on this instance by Nelder-Mead under the exact block, "
                        "at most BUDGET function evaluations")
    parser.add_argument("--block", type=nonempty, help="exact block to optimise, guard, polish and report with "
                        "(default: the run's exact block, else the preferred installed exact block for the concept)")
    parser.add_argument("--concept", type=nonempty,
                        help="equilibrium concept (default: the run's, else the default concept)")
    parser.add_argument("--eps", type=float, help="equilibrium tolerance (default: the run's, else 0.05)")
    parser.add_argument("--absolute", action="store_true", help="eps is absolute, not relative to the payoff scale")
    parser.add_argument("--steps", type=int, default=200, help="per-instance optimisation steps (default 200)")
    parser.add_argument("--lr", type=float, default=0.05, help="per-instance optimisation learning rate (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _from_run(folder: Path, task: str, context: Context) -> tuple["TrainConfig", "DesignObjective", Tensor]:
    """The config, objective and generator's intervention ``[1, ...]`` of the run folder ``folder`` of ``task``.

    ``folder`` is a run directory or a shipped generator's folder (the same layout:
    ``config.yaml`` and ``checkpoint.pt``); it is only read.
    """
    from did_core.components import build_task_parts
    from did_core.config import load_yaml, resolve_train_config
    from did_core.runs import RunDir

    run = RunDir(folder)
    if not run.file("config.yaml").is_file():
        raise ValueError(f"{folder} is not a run directory (no config.yaml)")
    raw = load_yaml(run.file("config.yaml"))
    if raw.get("task") != task:
        raise ValueError(f"{folder} is a run of task {raw.get('task')!r}, not {task!r}")
    cfg = resolve_train_config({}, raw)
    state = run.load_checkpoint()
    if state is None:
        raise ValueError(f"{folder} has no checkpoint to load")
    _, _, objective, generator = build_task_parts(cfg)
    run.load_model(generator, state)
    generator.eval()
    try:
        with torch.no_grad():
            x = generator(context)
    except (RuntimeError, ValueError, IndexError) as exc:  # e.g. an instance larger than the generator handles
        raise ValueError(f"the generator in {folder} cannot answer this instance ({_one_line(exc)[:200]}); "
                         f"--optimise designs for it by per-instance optimisation instead") from None
    return cfg, objective, x


def _solve(objective: "DesignObjective", block: "EquilibriumBlock", context: Context, x: Tensor, concept: str,
           eps: Epsilon) -> tuple[Tensor, float]:
    """The real joint ``[A_1..A_N]`` of the game induced by ``x`` under ``block``, and the objective's value."""
    games, mask = objective.induce(context, x)
    eq = block(games.double(), mask, concept=concept, eps=eps)
    sizes = [int(n) for n in mask[0].sum(-1)] if mask is not None else list(games.shape[2:])
    sigma = eq.sigma[0].detach().double()[tuple(slice(0, n) for n in sizes)]
    return sigma, float(objective.value(context, x, eq)[0])


def _guard(objective: "DesignObjective", block: "EquilibriumBlock", context: Context, x: Tensor, concept: str,
           eps: Epsilon) -> tuple[bool, float, float]:
    """Whether ``x`` is worse than the baseline under ``block`` (beyond round-off), and both values."""
    with torch.no_grad():
        v0 = _solve(objective, block, context, objective.baseline_intervention(context), concept, eps)[1]
        v1 = _solve(objective, block, context, x, concept, eps)[1]
    worse = bool(objective.improved(torch.tensor(v0), torch.tensor(v1)))
    return worse and abs(v1 - v0) > GUARD_TOLERANCE * max(1.0, abs(v0)), v0, v1


def _polish(task: str, objective: "DesignObjective", block: "EquilibriumBlock", context: Context, x: Tensor,
            concept: str, eps: Epsilon, budget: int) -> tuple[Tensor, float, float]:
    """``x`` refined by :func:`did_core.evaluate.polish_context` under ``block``; the values before and after."""
    from did_core.components import Components, get_task
    from did_core.config import TrainConfig
    from did_core.evaluate import polish_context

    cfg = TrainConfig(task=task, concept=concept, eps=eps.value, absolute_eps=not eps.relative)
    # polish_context reads the objective, the tolerance and the concept only: no sampler or generator is built.
    parts = Components(get_task(task), None, objective, None, block, eps, torch.device("cpu"))  # type: ignore[arg-type]
    with torch.no_grad():
        before = _solve(objective, block, context, x, concept, eps)[1]
    polished = polish_context(cfg, parts, block, context, x, budget).detach()
    with torch.no_grad():
        after = _solve(objective, block, context, polished, concept, eps)[1]
    return polished, before, after


def design_report(objective: "DesignObjective", context: Context, intervention: Tensor,
                  blocks: dict[str, "EquilibriumBlock"], concept: str, eps: Epsilon,
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


def _blocks(exact: str, cfg: "TrainConfig | None", concept: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The blocks to report with (optional non-exact ones first, the exact one last), and optional failures."""
    from did_core.blocks import capabilities_of
    from did_core.plugins import create, registry

    required = list(dict.fromkeys(([cfg.block] if cfg else []) + [exact]))
    optional = [e.name for e in registry("blocks") if e.name not in required
                and not capabilities_of(e.value).exact and capabilities_of(e.value).supports(concept)]
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
        if name in required or capabilities_of(block).supports(concept):
            blocks[name] = block
    return blocks, failed


def run(args: argparse.Namespace) -> int:
    """``did design`` on parsed arguments; returns the exit code (user errors: one line, 2)."""
    from did_core.cli import fail
    from did_core.components import get_task
    from did_core.concepts import get_concept
    from did_core.default_plugins.concepts import DEFAULT_CONCEPT
    from did_core.plugins import exact_block_for
    from did_core.registry import call_factory

    from did_core.shipped import shipped_concepts, shipped_folder

    task = get_task(args.task)
    instances = task.instances
    if instances is None:
        return fail(f"task {args.task} cannot read instance files (its plugin sets no Task.instances)")
    if args.steps < 0 or not args.lr > 0:
        return fail(f"--steps must be >= 0 and --lr > 0, got {args.steps} and {args.lr:g}")
    if args.polish is not None and args.polish < 1:
        return fail(f"--polish BUDGET must be >= 1 function evaluation, got {args.polish}")
    if args.optimise and args.generator:
        return fail("--optimise and --generator exclude each other: the intervention comes from one of them")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small instance: extra intra-op threads only add overhead
    try:
        context = instances.load(Path(args.instance))
        cfg = x = None
        folder, source = None, ""
        if args.generator:
            folder, source = Path(args.generator), f"generator of {args.generator}"
        elif not args.optimise:
            wanted = get_concept(args.concept or DEFAULT_CONCEPT).name
            if wanted in shipped_concepts(args.task):
                folder, source = shipped_folder(args.task, wanted), f"shipped generator ({args.task}, {wanted})"
        if folder is not None:
            cfg, objective, x = _from_run(folder, args.task, context)
        else:
            objective = call_factory(f"the objective of task {args.task!r}", task.objective)
        concept = get_concept(args.concept or (cfg.concept if cfg else DEFAULT_CONCEPT)).name
        eps = Epsilon(args.eps if args.eps is not None else (cfg.eps if cfg else 0.05),
                      relative=not (args.absolute or (cfg is not None and cfg.absolute_eps)))
        exact = args.block or (cfg.exact_block if cfg else None) or exact_block_for(concept)
        blocks, failed = _blocks(exact, cfg, concept)
        if cfg is None:
            x = instances.optimise(context, blocks[exact], concept, eps, args.steps, args.lr)
            if x is None:
                return fail(f"task {args.task} has no per-instance optimisation: give --generator RUN, "
                            f"a trained run of task {args.task}")
            why = "asked for" if args.optimise else f"task {args.task} ships no generator for {concept}"
            source = f"{instances.method} through {exact}, {args.steps} steps, lr {args.lr:g} ({why})"
        x = x.detach()
        x = x.double() if x.is_floating_point() else x
        guard: dict[str, Any] | None = None
        if not args.unguarded:
            worse, v0, v1 = _guard(objective, blocks[exact], context, x, concept, eps)
            guard = {"block": exact, "value_without": v0, "value_with": v1, "kept": "baseline" if worse else
                     "intervention"}
            if worse:
                x = objective.baseline_intervention(context).detach().to(x.dtype)
        polish: dict[str, Any] | None = None
        if args.polish is not None:
            x, before, after = _polish(args.task, objective, blocks[exact], context, x, concept, eps, args.polish)
            polish = {"block": exact, "budget": args.polish, "value_before": before, "value_after": after}
        optional = tuple(name for name in blocks if name != exact and (cfg is None or name != cfg.block))
        report = {**failed, **design_report(objective, context, x, blocks, concept, eps, optional)}
    finally:
        torch.set_num_threads(threads)
    guarded = guard is not None and guard["kept"] == "baseline"
    if args.json:
        print(json.dumps({**instances.summary(context), "task": args.task, "instance": args.instance,
                          "source": source, "concept": concept, "eps": eps.value, "relative_eps": eps.relative,
                          "metric": objective.metric_name, "minimize": objective.minimize,
                          "report_change": objective.report_change, "guarded": guarded, "guard": guard,
                          "polish": polish, "intervention": x[0].tolist(), "blocks": report}))
        return 0
    games, mask = objective.induce(context, objective.baseline_intervention(context))
    sizes = [int(n) for n in mask[0].sum(-1)] if mask is not None else list(games.shape[2:])
    print(f"{args.task} instance: {args.instance}  players: {len(sizes)}  actions: {sizes}")
    print(f"{instances.noun} ({source}):")
    print("\n".join("  " + line for line in instances.describe(context, x)))
    if guarded:
        print(f"guard: under {exact}, {instances.value_name} with the {instances.noun} {guard['value_with']:.4f} is "
              f"worse than {guard['value_without']:.4f} ({instances.baseline}): kept no intervention "
              f"({instances.baseline}); --unguarded keeps the {instances.noun}")
    if polish is not None:
        print(f"polish: Nelder-Mead under {exact}, at most {polish['budget']} evaluations: {instances.value_name} "
              f"{polish['value_before']:.4f} -> {polish['value_after']:.4f}")
    mode = "relative" if eps.relative else "absolute"
    better = "lower" if objective.minimize else "higher"
    for name, r in report.items():
        print(f"\nblock {name} ({concept}, {mode} eps {eps.value:g}{', optional' if r['optional'] else ''}):")
        if "error" in r:
            print(f"  unavailable: {r['error']}")
            continue
        for key, label in (("without", instances.baseline), ("with", f"with the {instances.noun}")):
            print(f"  equilibrium, {label}:")
            sigma = torch.tensor(r[f"equilibrium_{key}"], dtype=torch.float64)
            print("\n".join("    " + line for line in instances.describe_joint(context, sigma)))
        change = f", change {r['value_change']:+.4f}" if objective.report_change else ""
        print(f"  {instances.value_name}: {r['value_without']:.4f} ({instances.baseline}) -> {r['value_with']:.4f} "
              f"(with the {instances.noun}){change}; {better} is better")
    return 0
