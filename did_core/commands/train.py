"""``did train``: its config and run directory, and where it runs (one process, torchrun's ranks, or
``--nproc P`` processes that it starts through torchrun).

Under torchrun every rank runs this command with the same arguments: files (a config
file, the config of a run to resume) are read by rank 0 and sent to the others, the
checks every rank makes alike report once (:func:`did_core.distributed.together`), and
rank 0 alone prints. Its options, one per config field, and its help are
:mod:`did_core.commands.train_help`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from did_core import distributed
from did_core.commands.train_help import RunDefaults, add_config_flags, config_sources, run_defaults, train_epilog
from did_core.config import TrainConfig, resolve_train_config
from did_core.console import ArgumentParser, Command, fail, nonempty
from did_core.hookspecs import hookimpl
from did_core.launch import launch, without_nproc
from did_core.loop import Interrupted, RankFailed
from did_core.mechanism_task import option_value, run_task_name
from did_core.plugins import get_mechanism
from did_core.registry import Registry
from did_core.results import convergence_note, format_eval
from did_core.runs import RunDir, new_run_path
from did_core.train import check_resume, train

__all__ = ["build_parser", "main", "train_command", "COMMAND"]

_HELP = ("-h", "--help")


def build_parser(defaults: RunDefaults | None = None) -> ArgumentParser:
    """The arguments of ``did train``.

    ``defaults``: for ``did train --help``, the defaults its options show and where they come from
    (:func:`~did_core.commands.train_help.run_defaults`); ``None``: the generic defaults, without the epilog.
    """
    p = ArgumentParser(prog="did train", epilog=defaults and train_epilog(defaults),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=nonempty, help="YAML file of options (flags override it)")
    p.add_argument("--run-dir", type=nonempty, help="run directory (default: a new folder under runs/)")
    p.add_argument("--resume", type=nonempty, metavar="RUN_DIR", help="continue a run where it stopped")
    p.add_argument("--nproc", type=int, help="train data-parallel on this many processes of this machine (starts "
                   "torchrun; several machines: run torchrun yourself, see README 'Scale'); the batch stays the "
                   "global batch")
    add_config_flags(p, defaults)
    return p


def main(argv: list[str]) -> int:
    """``did train [options]``; with ``--help``, the options' defaults for the run this command line makes.
    A mechanism task's command line (``--task NAME``, or ``--resume`` of its run) is the task's own."""
    mechanism = get_mechanism(option_value(argv, "--task")) or get_mechanism(
        run_task_name(option_value(argv, "--resume") or ""))
    if mechanism is not None:
        return mechanism.train(argv)
    parser = build_parser()
    if set(_HELP) & set(argv):  # show the defaults of that run
        shown, _ = parser.parse_known_args([a for a in argv if a not in _HELP])
        parser = build_parser(run_defaults(shown))
    args = parser.parse_args(argv)
    args.argv = argv
    return train_command(args)


def train_command(args: argparse.Namespace) -> int:
    """``did train`` on parsed arguments: train here, under torchrun (every rank runs this), or start torchrun
    (``--nproc``)."""
    if args.nproc is not None:
        return _launch_train(args)
    with distributed.session() as world:
        return _train_here(args, world)


def _train_config(args: argparse.Namespace, world: distributed.World) -> tuple[TrainConfig, Path]:
    """The resolved config and run directory of a ``did train`` command (files read by rank 0 only)."""
    flags, file_data = config_sources(args, world)
    cfg = distributed.together(world, lambda: resolve_train_config(flags, file_data))
    if args.resume:
        return cfg, Path(args.resume)
    return cfg, Path(args.run_dir) if args.run_dir else distributed.broadcast(
        world, new_run_path(Path("runs"), f"{cfg.task}-{cfg.block}"))


def _launch_train(args: argparse.Namespace) -> int:
    """``did train --nproc P``: check here what can be checked alone, then run the rest under torchrun."""
    if distributed.launched():
        return fail("--nproc starts torchrun itself; under torchrun leave it out")
    if args.nproc < 1:
        return fail(f"--nproc must be >= 1, got {args.nproc}")
    cfg, run_path = _train_config(args, distributed.World())
    if cfg.batch_size < args.nproc:
        return fail(f"--batch-size {cfg.batch_size} is smaller than --nproc {args.nproc}: every process needs at "
                    f"least one context of each batch")
    run = RunDir(run_path)
    if args.resume:
        check_resume(run, cfg)
    else:
        run.check_new()
    argv = without_nproc(args.argv)
    if not args.resume and not args.run_dir:
        argv += ["--run-dir", str(run_path)]
    return launch(["train", *argv], args.nproc)


def _train_here(args: argparse.Namespace, world: distributed.World) -> int:
    """Train in this process (one of torchrun's ranks, or alone), then print the held-out evaluation."""
    cfg, run_path = _train_config(args, world)
    try:
        result = train(cfg, run_path, resume=bool(args.resume))
    except Interrupted as stop:
        where = (f"checkpoint saved at step {stop.step}" if stop.step is not None
                 else "stopped mid-step; the last periodic checkpoint is kept")
        if world.is_main:
            print(f"\ninterrupted: {where}; continue with: did train --resume {run_path}"
                  + (" (on any number of processes)" if world.size > 1 else ""), file=sys.stderr)
        return 130
    except RankFailed as exc:
        if world.is_main:
            print(f"did: error: {exc}; continue with: did train --resume {run_path}", file=sys.stderr)
        return 1
    if world.is_main:
        print(f"held-out evaluation ({cfg.eval_contexts} contexts, seed {cfg.eval_seed}, {cfg.concept}, "
              f"eps {cfg.eps}):")
        print(format_eval(result))
        note = convergence_note(result)
        if note:
            print(note, file=sys.stderr)
        print(f"written: {run_path / 'eval.json'}")
    return 0


COMMAND = Command(main, "train a mechanism generator", build_parser)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("train", COMMAND)
