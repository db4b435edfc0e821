"""The ``did`` command line: plugins, solve, train, eval, design, and subcommands registered by plugins.

Every user error (a malformed file, an unknown plugin name, an invalid option or
flag, a file the file system will not write) is reported as one line
``did: error: ...`` with exit code 2, and changes nothing on disk. Plugin
commands parse their arguments with :class:`ArgumentParser` to report theirs alike.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch

from did_core import distributed
from did_core.config import ConfigError, TrainConfig, load_yaml, resolve_train_config
from did_core.default_plugins.concepts import DEFAULT_CONCEPT
from did_core.distributed import PeerError
from did_core.train_cli import cmd_train as _cmd_train
from did_core.train_help import RunDefaults, add_config_flags, run_defaults, train_epilog
from did_core.registry import DuplicateNameError, UnknownNameError

__all__ = ["main", "fail", "ArgumentParser", "UsageError", "nonempty"]


class UsageError(ValueError):
    """A command line its parser refuses (an unknown flag, a value of the wrong type, a missing argument)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are a :class:`UsageError` (one ``did: error:`` line, no usage text)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def nonempty(text: str) -> str:
    """An argparse ``type`` for a name or path: an empty one (an unset shell variable) is refused, not the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (leave the flag out for its default)")
    return text


USER_ERRORS = (ValueError, ConfigError, UnknownNameError, DuplicateNameError)


def fail(message: str, own: bool = False) -> int:
    """Print one error line and return the usage exit code.

    Under torchrun every rank decides alike on the same arguments, so rank 0 alone prints, unless the
    error is this rank's ``own`` (raised here), which it prints with its rank.
    """
    rank = distributed.current().rank
    if rank == 0 or own:
        print(f"did: error: {f'(rank {rank}) ' if rank else ''}{' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _os_error(exc: OSError) -> str:
    """An error of the operating system as ``FILE: reason`` (the file it names, if any)."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def _yaml_mapping(text: str) -> dict[str, Any]:
    """A flag's options as a YAML mapping, e.g. ``'{max_memory_gb: 32}'`` (``'{}'``: none)."""
    import yaml

    try:
        value = yaml.safe_load(nonempty(text))
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a YAML mapping of options such as '{{max_memory_gb: 32}}'")
    return value


def _cmd_plugins(args: argparse.Namespace) -> int:
    from did_core.plugins import load_plugins

    state = load_plugins()
    if args.json:
        print(json.dumps({
            "plugins": [vars(p) for p in state.plugins],
            **{kind: [{"name": e.name, "provider": e.provider, "description": getattr(e.value, "description", "")}
                      for e in reg] for kind, reg in state.registries.items()},
            "errors": state.errors,
        }, indent=2))
        return 0
    width = max([len(p.name) for p in state.plugins] + [len(e.name) for r in state.registries.values() for e in r]
                + [8]) + 2
    print("plugins:")
    for p in state.plugins:
        print(f"  {p.name:<{width}}{p.distribution} {p.version}  hooks: {', '.join(p.hooks) or '-'}")
    for kind, reg in state.registries.items():
        print(f"{kind}:")
        for entry in reg:
            about = getattr(entry.value, "description", "")
            print(f"  {entry.name:<{width}}from {entry.provider}" + (f"  {about}" if about else ""))
        if not reg.names():
            print("  (none)")
    if state.errors:
        print("errors:")
        for error in state.errors:
            print(f"  {error}")
    return 0


def _cmd_solve(args: argparse.Namespace) -> int:
    from did_core.concepts import get_concept
    from did_core.equilibria import Epsilon
    from did_core.game_io import load_labelled_game
    from did_core.plugins import create, exact_block_for

    concept = get_concept(args.concept).name
    eps = Epsilon(args.eps, relative=not args.absolute)
    args.block = args.block or exact_block_for(concept)
    block = create("blocks", args.block, **args.block_options)
    game, labels = load_labelled_game(Path(args.game))
    eq = block(game.unsqueeze(0), concept=concept, eps=eps)
    sigma = eq.sigma[0].detach().double()
    report = {
        "players": list(labels.players),
        "actions": [list(row) for row in labels.actions],
        "joint": sigma.tolist(),
        "gap": float(eq.info["gap"][0]),
        "violation": float(eq.info["violation"][0]),
        "entropy": float(eq.info["entropy"][0]),
        "eps": eq.eps[0].tolist(),
    }
    if "active" in eq.info:
        report["active_constraints"] = int(eq.info["active"][0])
    problem = _solve_problem(block, eq, report)
    if problem:
        return fail(f"{args.block} on {args.game}: {problem}")
    if args.json:
        print(json.dumps(report, allow_nan=False))
        return 0
    print(f"game: {args.game}  players: {', '.join(labels.players)}  actions: {list(game.shape[1:])}")
    print(f"block: {args.block}  concept: {concept}  eps: {'absolute' if args.absolute else 'relative'} "
          f"{args.eps} -> per player {[round(e, 6) for e in report['eps']]}")
    exact = block.capabilities.exact
    print(f"{'eps-ME joint' if exact else 'joint (an approximation of the eps-ME joint: see gap and violation)'}, "
          f"P({', '.join(labels.players)}):")
    print(_format_joint(sigma, labels.players, labels.actions))
    print(f"gap: {report['gap']:.3e}  violation: {report['violation']:.3e}  entropy: {report['entropy']:.6f}"
          + (f"  active constraints: {report['active_constraints']}" if "active_constraints" in report else ""))
    return 0


def _format_joint(sigma: torch.Tensor, players: "Sequence[str] | None" = None,
                  actions: "Sequence[Sequence[str]] | None" = None) -> str:
    """A joint ``[A_1..A_N]`` as text: a matrix (rows player 1, columns player 2) or one line per joint action.

    Actions are shown by their labels (``actions[p][a]``) under the players' names,
    or numbered from 1 as ``a1=1``.
    """
    def label(p: int, a: int) -> str:
        if actions is None:
            return f"a{p + 1}={a + 1}"
        return actions[p][a] if sigma.dim() == 2 or players is None else f"{players[p]}={actions[p][a]}"

    if sigma.dim() == 2:
        first = max([6] + [len(label(0, r)) + 2 for r in range(sigma.shape[0])])
        width = max([10] + [len(label(1, d)) + 2 for d in range(sigma.shape[1])])
        corner = f"{players[0]} \\ {players[1]}" if players is not None and actions is not None else ""
        first = max(first, len(corner) + 2)
        rows = [f"{corner:<{first}}" + "".join(f"{label(1, d):>{width}}" for d in range(sigma.shape[1]))]
        rows += [f"{label(0, r):<{first}}" + "".join(f"{float(v):>{width}.6f}" for v in sigma[r])
                 for r in range(sigma.shape[0])]
        return "\n".join(rows)
    lines = []
    for index in torch.cartesian_prod(*[torch.arange(n) for n in sigma.shape]).reshape(-1, sigma.dim()).tolist():
        lines.append("  " + ", ".join(label(p, i) for p, i in enumerate(index))
                     + f": {float(sigma[tuple(index)]):.6f}")
    return "\n".join(lines)


def _solve_problem(block: Any, eq: Any, report: dict[str, Any]) -> str | None:
    """Why an answer must not be printed as an equilibrium (``None`` when it may).

    Non-finite numbers (payoffs too large for float64 make the scale overflow), an
    unconverged solve, or an exact block's answer that violates its tolerance.
    """
    numbers = torch.tensor([report["gap"], report["violation"], report["entropy"], *report["eps"]])
    if not (torch.isfinite(numbers).all() and torch.isfinite(eq.sigma).all()):
        return "the answer is not finite (payoffs too large for float64? rescale the game: equilibria do not change)"
    converged = eq.info.get("converged")
    if converged is not None and not bool(torch.as_tensor(converged).all()):
        return f"did not converge (violation {report['violation']:.3e}); no equilibrium to report"
    if block.capabilities.exact and report["violation"] > 1e-6 * max(1.0, max(report["eps"])):
        return f"the answer violates the eps-constraints by {report['violation']:.3e}; no equilibrium to report"
    return None


def _cmd_eval(args: argparse.Namespace) -> int:
    with distributed.session() as world:
        return _eval_command(args, world)


def _eval_command(args: argparse.Namespace, world: distributed.World) -> int:
    """``did eval``; under torchrun every rank evaluates its share and rank 0 reads and writes the run."""
    from did_core.components import build_components, solve_induced
    from did_core.convergence import summary
    from did_core.evaluate import PolishSettings, evaluate_generator
    from did_core.plugins import create, registry
    from did_core.report import build_report, markdown_table
    from did_core.runs import RunDir, atomic_write_text, json_text

    if (args.run_dir is None) == (args.shipped is None):
        return fail("give a run directory or --shipped TASK (one of them)")
    if args.shipped is None and (args.concept or args.out):
        return fail("--concept and --out go with --shipped TASK (a run directory's report goes into the run)")
    if args.shipped is not None and args.plots and not args.out:
        return fail("--plots with --shipped needs --out FILE.json (the plots go next to it)")
    if args.shipped is not None:
        from did_core.concepts import get_concept
        from did_core.default_plugins.concepts import DEFAULT_CONCEPT
        from did_core.shipped import shipped_folder

        run = RunDir(shipped_folder(args.shipped, get_concept(args.concept or DEFAULT_CONCEPT).name))
    else:
        run = RunDir(Path(args.run_dir))
    out = Path(args.out) if args.out else None
    if args.from_json:
        if not world.is_main:
            return 0
        stored = run.path if run.path.suffix == ".json" else run.file("report.json")
        if not stored.is_file():
            return fail(f"{stored} not found: run did eval on the run directory first")
        try:
            print(markdown_table(json.loads(stored.read_text())))
        except (ValueError, KeyError, TypeError) as exc:
            return fail(f"{stored} is not a DID evaluation report: {type(exc).__name__}: {exc}")
        return 0

    def read_run() -> tuple[dict[str, Any], dict[str, Any]]:
        if not run.file("config.yaml").exists():
            raise ConfigError(f"{run.path} is not a run directory (no config.yaml)")
        config, state = load_yaml(run.file("config.yaml")), run.load_checkpoint()
        if state is None:
            raise ConfigError(f"{run.path} has no checkpoint.pt to evaluate")
        return config, state

    if args.contexts is not None and args.contexts < 1:
        return fail(f"--contexts must be >= 1, got {args.contexts}")
    if args.blocks is not None and not [b for b in args.blocks.split(",") if b.strip()]:
        return fail("--blocks names no block (give a comma-separated list, or leave it out for the defaults)")
    if args.workers is not None and args.workers < 1:
        return fail(f"--workers must be >= 1, got {args.workers}")
    if args.polish_budget is not None and args.polish_budget < 1:
        return fail(f"--polish-budget must be >= 1, got {args.polish_budget}")
    config, state = distributed.on_main(world, read_run)

    def prepare() -> tuple[TrainConfig, Any, list[str]]:
        cfg = resolve_train_config({}, config)
        parts = build_components(cfg)
        run.load_model(parts.generator, state)
        blocks = ([b.strip() for b in args.blocks.split(",") if b.strip()] if args.blocks
                  else list(dict.fromkeys([cfg.block, cfg.exact_block])))
        for name in blocks:
            registry("blocks").get(name)
        if args.plots and world.is_main:
            from did_core.plots import require_matplotlib

            require_matplotlib()
        return cfg, parts, blocks

    cfg, parts, blocks = distributed.together(world, prepare)
    if int(state.get("step", cfg.steps)) < cfg.steps and world.is_main:
        print(f"note: {run.path} stopped at step {int(state['step'])} of {cfg.steps}; evaluating its last "
              f"checkpoint (continue it with did train --resume {run.path})", file=sys.stderr)
    polish = None
    if args.polish:
        polish = PolishSettings(args.polish_budget or parts.task.polish_budget, args.workers or 0)
    contexts = args.contexts or cfg.eval_contexts
    seed = cfg.eval_seed if args.seed is None else args.seed
    if polish is not None and world.is_main:
        from did_core.evaluate import polish_seconds

        sample = parts.sampler.sample(1, torch.Generator().manual_seed(seed))
        minutes = polish_seconds(cfg, parts, sample, blocks, contexts, polish, world=world) / 60
        print(f"note: the local polish runs up to {polish.budget} evaluations per context x {contexts} contexts x "
              f"{len(blocks)} block(s) on {polish.worker_count(world) * world.size} worker(s): at most about "
              f"{minutes:.1f} min (--polish-budget lowers it)", file=sys.stderr)
    if out is None:
        distributed.on_main(world, run.acquire)  # not while a did train (or another did eval) writes this run
    try:
        result = evaluate_generator(cfg, parts, blocks, contexts=contexts, seed=seed, polish=polish, world=world)
        if not world.is_main:
            return 0
        report = build_report(cfg.task, cfg.model_dump(), result, contexts, seed, ["eval", *args.argv],
                              world_size=world.size, trained_steps=int(state.get("step", cfg.steps)))
        table = markdown_table(report)
        if out is not None:
            atomic_write_text(out, json_text(report))
            atomic_write_text(out.with_suffix(".md"), table + "\n")
        elif args.shipped is None and run.replace_keeping_previous({"report.json": json_text(report),
                                                                     "report.md": table + "\n"}):
            # The previous report stays readable next to the new one (and in place if the new one cannot be written).
            print(f"note: the previous report is kept as {run.file('report.previous.json').name} / .md",
                  file=sys.stderr)
    finally:
        if world.is_main and out is None:
            run.release()
    print(table)
    note = summary(result)
    if note:
        print(note, file=sys.stderr)
    if args.plots:
        from did_core.plots import per_size_bars, training_curves

        folder = out.parent / f"{out.stem}-plots" if out is not None else run.file("plots")
        folder.mkdir(exist_ok=True)
        written = [per_size_bars(report, folder / "per_size.png")]
        if run.metrics():
            written.append(training_curves(run.metrics(), folder / "training_curves.png"))
        exact = create("blocks", cfg.exact_block)
        written += parts.objective.extra_plots(parts, lambda c, x: solve_induced(parts, exact, c, x, cfg.concept),
                                               folder)
        print("plots: " + ", ".join(str(p) for p in written))
    if out is not None:
        print(f"written: {out}, {out.with_suffix('.md')}")
    elif args.shipped is None:
        print(f"written: {run.file('report.json')}, {run.file('report.md')}")
    return 0


def _cmd_ship(args: argparse.Namespace) -> int:
    from did_core.files import read_text_file
    from did_core.shipped import ship

    notes = read_text_file(Path(args.notes), 1 << 20) if args.notes else ""
    written = ship(Path(args.run_dir), Path(args.folder), notes, unfinished=args.unfinished)
    print("written: " + ", ".join(str(p) for p in written))
    return 0


def _cmd_design(args: argparse.Namespace) -> int:
    from did_core.design import run

    return run(args)


def build_parser(train_help: RunDefaults | None = None) -> argparse.ArgumentParser:
    """The ``did`` argument parser (plugin subcommands are dispatched before parsing).

    ``train_help``: for ``did train --help``, the defaults its options show and where they come from
    (:func:`did_core.train_help.run_defaults`); ``None``: the generic defaults, without the epilog.
    """
    parser = ArgumentParser(prog="did", description="Deep Incentive Design")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="installed plugins, what they register, and load errors")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("solve", help="the eps-ME (C)CE of one game")
    p.add_argument("game", help="a .json ({\"payoffs\": [...]}), .npy or Gambit .nfg file")
    p.add_argument("--block", type=nonempty, help="equilibrium block (default: the preferred installed exact block)")
    p.add_argument("--block-options", type=_yaml_mapping, default={}, metavar="YAML",
                   help="options of the block, e.g. '{max_memory_gb: 32}' to let it take on larger games")
    p.add_argument("--concept", type=nonempty, default=DEFAULT_CONCEPT,
                   help=f"equilibrium concept (did plugins lists them; "
                   f"default {DEFAULT_CONCEPT})")
    p.add_argument("--eps", type=float, default=0.05)
    p.add_argument("--absolute", action="store_true", help="eps is absolute, not relative to the payoff scale")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_solve)

    p = sub.add_parser("train", help="train a mechanism generator", epilog=train_help and train_epilog(train_help),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=nonempty, help="YAML file of options (flags override it)")
    p.add_argument("--run-dir", type=nonempty, help="run directory (default: a new folder under runs/)")
    p.add_argument("--resume", type=nonempty, metavar="RUN_DIR", help="continue a run where it stopped")
    p.add_argument("--nproc", type=int, help="train data-parallel on this many processes of this machine (starts "
                   "torchrun; several machines: run torchrun yourself, see README 'Scale'); the batch stays the "
                   "global batch")
    add_config_flags(p, train_help)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained run on held-out contexts: blocks, guarded, polish, plots")
    p.add_argument("run_dir", nargs="?", help="a run directory (with --from-json also a report.json file)")
    p.add_argument("--shipped", type=nonempty, metavar="TASK",
                   help="evaluate the generator that TASK's plugin ships (instead of a run directory)")
    p.add_argument("--concept", type=nonempty, help=f"with --shipped: which concept's generator (default "
                   f"{DEFAULT_CONCEPT})")
    p.add_argument("--out", type=nonempty, metavar="FILE.json", help="write the report here (with --shipped; "
                   "a shipped generator's own folder is never written)")
    p.add_argument("--contexts", type=int, help="held-out contexts (default: the run's eval_contexts)")
    p.add_argument("--seed", "--eval-seed", dest="seed", type=int,
                   help="held-out seed (default: the run's eval_seed)")
    p.add_argument("--blocks", help="comma-separated block names (default: the run's block and exact block)")
    p.add_argument("--polish", action="store_true", help="also Nelder-Mead on each context's intervention")
    p.add_argument("--polish-budget", type=int, help="function evaluations per context (default: the task's)")
    p.add_argument("--workers", type=int, help="processes for the polish (default: CPU count)")
    p.add_argument("--plots", action="store_true", help="write PNG plots to RUN_DIR/plots (needs matplotlib)")
    p.add_argument("--from-json", action="store_true", help="reprint the table from the stored report.json")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("ship", help="export a finished, evaluated run as a shipped generator (weights, config, "
                       "report, model card, learning curve)")
    p.add_argument("run_dir", help="a finished run directory with a report.json (did eval RUN)")
    p.add_argument("folder", help="the shipped folder to write, e.g. plugins/tasks_inverse/did_inverse/shipped/cce")
    p.add_argument("--notes", type=nonempty, metavar="FILE", help="Markdown added to the model card (e.g. the "
                   "commands used and what more steps would buy)")
    p.add_argument("--unfinished", action="store_true", help="ship the last checkpoint of a run that stopped "
                   "before its last step (the model card shows the step)")
    p.set_defaults(func=_cmd_ship)

    from did_core.design import add_arguments as add_design_arguments

    p = sub.add_parser("design", help="an intervention for one instance file of a task, and the equilibrium it "
                       "induces under each block")
    add_design_arguments(p)
    p.set_defaults(func=_cmd_design)
    return parser


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Warnings as one ``did: warning: ...`` line, without the source location a CLI user cannot act on."""
    print(f"did: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``did`` console script."""
    import warnings

    warnings.showwarning = _warning_line
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and not argv[0].startswith("-") and argv[0] not in {"plugins", "solve", "train", "eval", "ship", "design"}:
            from did_core.plugins import registry

            commands = registry("commands")
            if argv[0] in commands:
                return int(commands.get(argv[0]).value(argv[1:]) or 0)
        parser = build_parser()
        if argv[:1] == ["train"] and {"-h", "--help"} & set(argv[1:]):  # show the defaults of that run
            shown, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")])
            parser = build_parser(train_help=run_defaults(shown))
        if not argv or argv[0] in ("-h", "--help"):
            from did_core.plugins import registry

            extra = registry("commands").names()
            if extra:
                parser.epilog = "commands added by plugins: " + ", ".join(extra) + " (did COMMAND --help)"
        args = parser.parse_args(argv)
        args.argv = argv[1:]
        return int(args.func(args) or 0)
    except PeerError as exc:  # another rank failed and reported it; rank 0 may add what became of the run
        if exc.report:
            fail(str(exc))
        return 1
    except USER_ERRORS as exc:
        return fail(str(exc), own=True)
    except OSError as exc:  # the file system refused (a missing file, no permission, a full disk)
        return fail(_os_error(exc), own=True)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
