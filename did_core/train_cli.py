"""The ``did train`` command: its config and run directory, and where it runs (one process, torchrun's ranks,
or ``--nproc P`` processes that it starts through torchrun).

Under torchrun every rank runs this command with the same arguments: files (a config
file, the config of a run to resume) are read by rank 0 and sent to the others, the
checks every rank makes alike report once (:func:`did_core.distributed.together`), and
rank 0 alone prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from did_core import distributed
from did_core.config import ConfigError, TrainConfig, load_yaml, resolve_train_config
from did_core.loop import Interrupted, RankFailed

__all__ = ["cmd_train", "config_sources"]


def fail(message: str) -> int:
    """:func:`did_core.cli.fail` (imported when needed: the CLI imports this module)."""
    from did_core.cli import fail as cli_fail

    return cli_fail(message)


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name, None) is not None}


def config_sources(args: argparse.Namespace, world: distributed.World) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The flags a ``did train`` command sets and the mapping its ``--config`` file (or the run it resumes) holds.

    Files are read by rank 0 only.
    """
    if args.resume:
        for flag, value in (("--config", args.config), ("--run-dir", args.run_dir)):
            if value:
                raise ConfigError(f"{flag} cannot be combined with --resume: a resumed run keeps its directory "
                                  f"and config")
        run_path = Path(args.resume)

        def stored() -> dict[str, Any]:
            if not (run_path / "config.yaml").exists():
                raise ConfigError(f"cannot resume: {run_path} has no config.yaml (not a run directory)")
            return load_yaml(run_path / "config.yaml")

        file_data = distributed.on_main(world, stored)
    else:
        file_data = distributed.on_main(world, lambda: load_yaml(Path(args.config)) if args.config else None)
    return _train_flags(args), file_data


def _train_config(args: argparse.Namespace, world: distributed.World) -> tuple[TrainConfig, Path]:
    """The resolved config and run directory of a ``did train`` command (files read by rank 0 only)."""
    from did_core.runs import new_run_path

    flags, file_data = config_sources(args, world)
    cfg = distributed.together(world, lambda: resolve_train_config(flags, file_data))
    if args.resume:
        return cfg, Path(args.resume)
    return cfg, Path(args.run_dir) if args.run_dir else distributed.broadcast(
        world, new_run_path(Path("runs"), f"{cfg.task}-{cfg.block}"))


def cmd_train(args: argparse.Namespace) -> int:
    """``did train``: train here, under torchrun (every rank runs this), or start torchrun (``--nproc``)."""
    if args.nproc is not None:
        return _launch_train(args)
    with distributed.session() as world:
        return _train_command(args, world)


def _launch_train(args: argparse.Namespace) -> int:
    """``did train --nproc P``: check here what can be checked alone, then run the rest under torchrun."""
    from did_core.launch import launch, without_nproc
    from did_core.runs import RunDir
    from did_core.train import check_resume

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


def _train_command(args: argparse.Namespace, world: distributed.World) -> int:
    from did_core.convergence import summary
    from did_core.evaluate import format_eval
    from did_core.train import train

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
        note = summary(result)
        if note:
            print(note, file=sys.stderr)
        print(f"written: {run_path / 'eval.json'}")
    return 0
