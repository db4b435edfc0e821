"""The ``dynamic`` mechanism task's commands: ``did train --task dynamic``, ``did eval --shipped dynamic`` /
``did eval RUN_DIR`` and ``did design dynamic TYPES_FILE``.

Every user error (a flag out of range, a malformed or non-finite file, a run directory in use) is a
``ValueError`` the core prints as one ``did: error:`` line with exit code 2, raised before anything is written.
A run directory holds ``config.json`` (``{"task": "dynamic", "setting", "n", "m", "train": {...}}``), the
training loop's files (checkpoint, metrics, TensorBoard events) and, when done, ``mechanism.json`` (the
shipped format, :mod:`did_dynamic.mechanism_file`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

from did_core.affine_maximizer import AffineMaximizer, vcg
from did_core.console import ArgumentParser, bounded_int, finite_float, nonempty
from did_core.files import shown
from did_core.mechanism_task import RUN_CONFIG, read_run_config, start_run
from did_core.runs import RunDir, atomic_write_text, json_text, output_file
from did_dynamic.evaluation import Measured, evaluate
from did_dynamic.mechanism_file import mechanism_json, read_mechanism
from did_dynamic.settings import SETTINGS, Setting, make_setting
from did_dynamic.training import LIMITS, METHODS, EVALUATION_OFFSET, TrainSettings, sobol_search, train
from did_dynamic.types_file import read_types_file

__all__ = ["TASK", "SHIPPED", "train_main", "eval_main", "design_main", "shipped_path"]

TASK = "dynamic"
#: The shipped mechanisms, one file per published cell.
SHIPPED = Path(__file__).resolve().parent / "shipped"
MECHANISM = "mechanism.json"

def shipped_path(setting: Setting) -> Path:
    """The shipped file of ``setting``'s cell."""
    return SHIPPED / f"{setting.key}.json"


def _bounded(name: str, kind: type) -> Callable[[str], float | int]:
    """An argparse ``type``: a finite number, or an integer within :data:`did_dynamic.training.LIMITS` where it
    names a bound (from 0 for the seed, else from 1); a cell's sizes are bounded by its setting."""
    if kind is float:
        return finite_float
    return bounded_int(0 if name == "seed" else 1, LIMITS.get(name, 2**31))


def _train_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did train", description="Train a dynamic affine maximizer for one cell.")
    p.add_argument("--task", type=nonempty, help=f"the task ({TASK})")
    p.add_argument("--setting", choices=SETTINGS)
    p.add_argument("--n", type=_bounded("n", int), help="agents")
    p.add_argument("--m", type=_bounded("m", int), help="items, tasks or grid side")
    p.add_argument("--run-dir", type=nonempty, help="the run's folder (new)")
    p.add_argument("--resume", type=nonempty, metavar="RUN_DIR", help="continue this run from its checkpoint")
    defaults = TrainSettings()
    for f in fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "method":
            p.add_argument(flag, choices=METHODS, default=defaults.method)
        else:
            kind = type(getattr(defaults, f.name))
            p.add_argument(flag, type=_bounded(f.name, kind), default=getattr(defaults, f.name),
                           help=f"(default {getattr(defaults, f.name)})")
    return p


def _config(args: argparse.Namespace) -> TrainSettings:
    config = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})
    config.check()
    return config


def _read_run_config(folder: Path) -> dict:
    data = read_run_config(folder, TASK)
    if not isinstance(data.get("train"), dict):
        raise ValueError(f"run {shown(str(folder))}: {RUN_CONFIG} is not a {TASK} run's")
    return data


def train_main(argv: list[str]) -> int:
    """``did train --task dynamic --setting S --n N --m M --run-dir DIR [options]`` or ``--resume DIR``."""
    args = _train_parser().parse_args(argv)
    if args.resume is not None:
        if any(v is not None for v in (args.setting, args.n, args.m, args.run_dir)):
            raise ValueError("train: --resume continues a run as it was configured; leave out --setting, --n, "
                             "--m and --run-dir")
        folder = Path(args.resume)
        data = _read_run_config(folder)
        setting = make_setting(data.get("setting"), data.get("n"), data.get("m"))
        config = TrainSettings.from_dict(data["train"], f"run {shown(str(folder))}: {RUN_CONFIG}")
        run = RunDir(folder).acquire()
    else:
        if args.setting is None or args.n is None or args.m is None or args.run_dir is None:
            raise ValueError("train: --task dynamic needs --setting, --n, --m and --run-dir (or --resume RUN_DIR)")
        setting, config = make_setting(args.setting, args.n, args.m), _config(args)
        run = start_run(args.run_dir, TASK, {"setting": setting.name, "n": setting.n, "m": setting.m,
                                             "train": asdict(config)})
    try:
        mechanism, measured = _train_in(run, setting, config, resume=args.resume is not None)
    finally:
        run.release()
    print(f"{setting.key}: {'revenue' if setting.maximize else 'makespan'} {measured.mean:.4f} "
          f"(+- {measured.stderr:.4f}, {measured.samples} profiles); {run.file(MECHANISM)}")
    return 0


def _train_in(run: RunDir, setting: Setting, config: TrainSettings, resume: bool) -> tuple[AffineMaximizer,
                                                                                          Measured]:
    """Train in the acquired ``run`` (its config written by :func:`did_core.mechanism_task.start_run`) and write
    its mechanism file."""
    if config.method == "sobol":
        def show(done: int, best: float) -> None:
            print(f"{setting.key}: {done}/{config.candidates} candidates, best {best:.4f}", flush=True)
        mechanism, measured = sobol_search(setting, config, show)
    else:
        mechanism, measured = train(setting, config, run, resume=resume)
    run.write_json(MECHANISM, mechanism_json(setting, mechanism, measured))
    return mechanism, measured


def _eval_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did eval", description="Evaluate dynamic affine maximizers exactly.")
    p.add_argument("run_dir", nargs="?", type=nonempty, help="a run of the dynamic task")
    p.add_argument("--shipped", type=nonempty, metavar="TASK", help=f"the shipped mechanisms ({TASK})")
    p.add_argument("--setting", choices=SETTINGS, help="only this setting's cells")
    p.add_argument("--n", type=_bounded("n", int))
    p.add_argument("--m", type=_bounded("m", int))
    p.add_argument("--profiles", type=_bounded("eval_profiles", int), default=100_000,
                   help="type profiles per mechanism (default 100000)")
    p.add_argument("--seed", type=_bounded("seed", int), default=0)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return p


def eval_main(argv: list[str]) -> int:
    """``did eval --shipped dynamic [--setting S [--n N --m M]]`` or ``did eval RUN_DIR``: every mechanism's
    exact objective on fresh profiles beside the value its file declares and VCG's. Writes nothing."""
    args = _eval_parser().parse_args(argv)
    if (args.run_dir is None) == (args.shipped is None):
        raise ValueError("eval: give a run directory or --shipped dynamic (one of them)")
    if args.run_dir is not None:
        if args.setting or args.n or args.m:
            raise ValueError("eval: --setting, --n and --m go with --shipped")
        _read_run_config(Path(args.run_dir))
        paths = [Path(args.run_dir) / MECHANISM]
    else:
        paths = sorted(SHIPPED.glob("*.json"))
        if args.setting is not None:
            paths = [p for p in paths if p.stem.startswith(args.setting + "_")]
        if args.n is not None or args.m is not None:
            if args.setting is None or args.n is None or args.m is None:
                raise ValueError("eval: --n and --m go together, with --setting")
            paths = [p for p in paths if p.stem == f"{args.setting}_n{args.n}_m{args.m}"]
        if not paths:
            raise ValueError("eval: no shipped mechanism matches")
    rows = []
    for path in paths:
        shipped = read_mechanism(path)
        setting = shipped.setting
        seed = args.seed + EVALUATION_OFFSET + 1  # not the training run's evaluation stream
        measured = evaluate(setting, shipped.mechanism, args.profiles, seed)
        baseline = evaluate(setting, vcg(setting.n, setting.mdp.num_states, setting.mdp.num_actions),
                            args.profiles, seed)
        rows.append({"cell": setting.key, "objective": "revenue" if setting.maximize else "makespan",
                     "vcg": baseline.mean, "declared": shipped.objective, "measured": measured.mean,
                     "stderr": measured.stderr, "profiles": measured.samples})
    if args.json:
        print(json_text(rows), end="")
    else:
        print("| cell | objective | VCG | declared | measured (+- s.e.) |\n|---|---|---|---|---|")
        for r in rows:
            vcg_value = r["vcg"] if round(r["vcg"], 4) != 0 else 0.0  # no -0.0000 for a rounding of zero
            print(f"| {r['cell']} | {r['objective']} | {vcg_value:.4f} | {r['declared']:.4f} | "
                  f"{r['measured']:.4f} (+- {r['stderr']:.4f}) |")
    return 0


def _design_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did design", description="Design a dynamic affine maximizer for a type distribution.")
    p.add_argument("task", type=nonempty, help=TASK)
    p.add_argument("types_file", type=nonempty, help="the type-distribution file (JSON; see docs/dynamic.md)")
    p.add_argument("--steps", type=_bounded("steps", int), default=300, help="training steps (default 300)")
    p.add_argument("--starts", type=_bounded("starts", int), default=4)
    p.add_argument("--profiles", type=_bounded("eval_profiles", int), default=100_000,
                   help="type profiles the expected objective is measured on (default 100000)")
    p.add_argument("--seed", type=_bounded("seed", int), default=0)
    p.add_argument("--out", type=nonempty, metavar="FILE.json", help="also write the mechanism file here")
    p.add_argument("--force", action="store_true", help="let --out write inside a run directory")
    return p


def design_main(argv: list[str]) -> int:
    """``did design dynamic TYPES_FILE``: an affine maximizer trained for the file's type distribution (from
    VCG and random starts), or the shipped mechanism of the same cell where that does better on this
    distribution; its expected objective measured exactly; printed as a mechanism file (and written to
    ``--out``)."""
    args = _design_parser().parse_args(argv)
    out = output_file(Path(args.out), force=args.force) if args.out else None
    setting = read_types_file(Path(args.types_file))
    config = TrainSettings(steps=args.steps, starts=args.starts, eval_profiles=args.profiles, seed=args.seed,
                           validate_every=max(1, args.steps // 3), validation_profiles=5_000)
    config.check()
    with _scratch_run() as run:
        mechanism, measured = train(setting, config, run)
    shipped = shipped_path(setting)
    if shipped.is_file():
        candidate = read_mechanism(shipped).mechanism
        other = evaluate(setting, candidate, args.profiles, args.seed + EVALUATION_OFFSET)
        if (other.mean > measured.mean) == setting.maximize and other.mean != measured.mean:
            mechanism, measured = candidate, other
    text = json_text(mechanism_json(setting, mechanism, measured))
    if out is not None:
        atomic_write_text(out, text)
    print(text, end="")
    return 0


class _scratch_run:
    """A temporary run directory for ``did design``'s short training (removed afterwards)."""

    def __enter__(self) -> RunDir:
        import tempfile

        self._folder = tempfile.TemporaryDirectory(prefix="did-design-")
        self._run = RunDir(Path(self._folder.name)).acquire()
        return self._run

    def __exit__(self, *exc: object) -> None:
        self._run.release()
        self._folder.cleanup()
