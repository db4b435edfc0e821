"""``did deb ...``: pretrain, export and validate the learned block.

    did deb train --concept ce|cce [--max-actions 16] [--steps N] [--batch-size B] [--device cpu|cuda]
                  [--run-dir DIR] [--resume DIR] [--validate-every K] [--max-minutes M] [--width W] ...
    did deb export RUN_DIR OUT.pt        the run's model + plain metadata as a weights file
    did deb validate [--weights F.pt | --concept C] [--games 32] [--sizes 2,4,..] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from did_core.loop import LoopSettings, Schedule, TrainingLoop
from did_core.files import shown
from did_core.runs import RunDir, atomic_write_text, new_run_path, output_file
from did_deb_marris.network import DebMarrisNet, NetConfig

if TYPE_CHECKING:
    from did_deb_marris.pretrain import PretrainConfig, ValidationSet

__all__ = ["main"]


def _layered_concepts() -> list[str]:
    """Registered concepts whose duals have a per-player layout: the ones the network can learn."""
    from did_core.plugins import get_concept, registry

    return [name for name in registry("concepts").names() if get_concept(name).layout is not None]


def _sizes(text: str) -> list[int]:
    """``--sizes``: comma-separated action counts >= 1."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a comma-separated list of action counts >= 1, "
                                         f"e.g. 2,4,8")
    return sizes


def _parser() -> argparse.ArgumentParser:
    from did_core.console import ArgumentParser
    from did_core.plugins import DEFAULT_CONCEPT
    from did_deb_marris.block import SHIPPED_CONCEPTS

    parser = ArgumentParser(prog="did deb", description="the learned equilibrium block deb_marris")
    sub = parser.add_subparsers(dest="action", required=True)

    p = sub.add_parser("train", help="unsupervised pretraining on random embedded games (loss: the dual f)")
    p.add_argument("--concept", choices=_layered_concepts())
    p.add_argument("--max-actions", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--buckets", type=int, help="size buckets per batch (less padding)")
    p.add_argument("--lr", type=float)
    p.add_argument("--eps", type=float, help="relative epsilon the weights serve (default 0.05)")
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int)
    p.add_argument("--run-dir", help="run directory (default: a new folder under runs/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--validate-every", type=int)
    p.add_argument("--val-games", type=int, help="games per size in the fixed validation set")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much wall time; "
                   "with --steps unset, the step count is fitted to it after a short timing")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--init-from", help="start from a weights file or a run directory's checkpoint (fine-tuning); "
                   "the architecture is taken from it")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--p2p-layers", type=int)
    p.add_argument("--d2d-layers", type=int)
    p.add_argument("--row-scale", choices=["none", "inv_actions"], help="divide the duals of player p by A_p-1 (CE) / A_p")

    p = sub.add_parser("export", help="write a run's model as a weights file")
    p.add_argument("run_dir")
    p.add_argument("out")

    p = sub.add_parser("card", help="write a weights file's model card (Markdown) from its run and a fresh validation")
    p.add_argument("weights")
    p.add_argument("--run-dir", required=True, help="the training run the weights were exported from")
    p.add_argument("--out", required=True)
    p.add_argument("--command", dest="train_command", default="", help="the command that trained it")
    p.add_argument("--hardware", default="2-core shared CPU (4 other jobs on the same cores), no GPU, "
                   "torch.set_num_threads(1)")
    p.add_argument("--games", type=int, default=64)
    p.add_argument("--sizes", type=_sizes, default=",".join(map(str, range(2, 17))))
    p.add_argument("--seed", type=int, default=2024)

    p = sub.add_parser("validate", help="accuracy of weights vs the exact block, per size")
    p.add_argument("--weights", help="weights file (default: shipped weights of --concept)")
    p.add_argument("--concept", choices=SHIPPED_CONCEPTS,
                   default=DEFAULT_CONCEPT if DEFAULT_CONCEPT in SHIPPED_CONCEPTS else SHIPPED_CONCEPTS[0])
    p.add_argument("--games", type=int, default=64)
    p.add_argument("--sizes", type=_sizes, default=",".join(map(str, range(2, 17))))
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--json", help="also write the rows to this JSON file")
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``did deb``."""
    args = _parser().parse_args(argv)
    flag, name = {"export": ("OUT", "out"), "card": ("--out", "out"), "validate": ("--json", "json")}.get(
        args.action, ("", ""))
    if name and getattr(args, name):  # checked before any work: a device, a missing folder, a run's folder
        output_file(Path(getattr(args, name)), flag, force_flag=None)
    actions = {"train": _train, "export": _export, "validate": _validate, "card": _card}
    return actions[args.action](args)


def _train(args: argparse.Namespace) -> int:
    from did_deb_marris.pretrain import PretrainConfig

    if args.resume:
        run = RunDir(Path(args.resume))
        if not run.file("config.json").exists():
            raise ValueError(f"deb train: {args.resume} has no config.json to resume from")
        cfg = PretrainConfig(**run.read_json("config.json"))
        if args.max_minutes is not None:
            cfg.max_minutes = args.max_minutes
    else:
        cfg = PretrainConfig()
        for flag, name in (("concept", "concept"), ("max_actions", "max_actions"), ("steps", "steps"),
                           ("batch_size", "batch_size"), ("buckets", "buckets"), ("lr", "lr"), ("eps", "eps_rel"), ("device", "device"),
                           ("seed", "seed"), ("validate_every", "validate_every"), ("val_games", "val_games"),
                           ("max_minutes", "max_minutes"), ("threads", "threads"),
                           ("warmup_steps", "warmup_steps"), ("init_from", "init_from")):
            if getattr(args, flag) is not None:
                setattr(cfg, name, getattr(args, flag))
        if args.concept is None:
            raise ValueError("deb train: --concept ce|cce is required")
        for flag, name in (("width", "width"), ("p2p_layers", "p2p_layers"), ("d2d_layers", "d2d_layers"),
                           ("row_scale", "row_scale")):
            if getattr(args, flag) is not None:
                cfg.net[name] = getattr(args, flag)
        if cfg.init_from:
            cfg.net = dict(_initial_state(cfg.init_from)[1]["net"])
        cfg.net["concept"] = cfg.concept
        cfg.val_sizes = [s for s in cfg.val_sizes if s <= cfg.max_actions] or [cfg.max_actions]
        run = RunDir(Path(args.run_dir) if args.run_dir else new_run_path(Path("runs"), f"deb-{cfg.concept}"))
        run.check_new()
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("deb train: --device cuda but CUDA is not available")
    run.acquire()  # one writer per run directory, and a directory it can write in
    try:
        return _pretrain(args, cfg, run)
    finally:
        run.release()


def _pretrain(args: argparse.Namespace, cfg: PretrainConfig, run: RunDir) -> int:
    """``did deb train`` in the run directory ``run`` it holds: the loop, its validations and the final table."""
    from did_deb_marris.pretrain import Deadline, ValidationSet, pretrain_step, summary, validate

    torch.manual_seed(cfg.seed)
    net = DebMarrisNet(cfg.net_config()).to(cfg.device)
    if cfg.init_from and not args.resume:
        net.load_state_dict(_initial_state(cfg.init_from)[0])
    rng = torch.Generator().manual_seed(cfg.seed)
    deadline = Deadline(cfg.max_minutes)
    began = time.monotonic()

    if not args.resume and args.steps is None and cfg.max_minutes is not None:
        # Fit the step count (and so the learning-rate schedule) to the wall budget.
        probe = DebMarrisNet(cfg.net_config()).to(cfg.device)
        probe_rng = torch.Generator().manual_seed(cfg.seed + 1)
        start = time.monotonic()
        for _ in range(10):
            pretrain_step(probe, cfg, probe_rng)
        rate = 10 / (time.monotonic() - start)
        cfg.steps = max(100, int(rate * 60 * cfg.max_minutes * 0.85))
        print(f"did deb train: {rate:.2f} steps/s measured; fitting {cfg.steps} steps into {cfg.max_minutes} min",
              file=sys.stderr)
    run.write_json("config.json", cfg.to_dict())

    print(f"did deb train: building the validation set ({cfg.val_games} games per size {cfg.val_sizes})",
          file=sys.stderr)
    vset = ValidationSet(cfg.concept, cfg.val_sizes, cfg.val_games, cfg.val_seed, cfg.eps_rel, cfg.n_players)
    val_rows: dict[int, list] = {}

    def step_fn(step: int, progress: float) -> dict[str, float]:
        _, scalars = pretrain_step(net, cfg, rng)
        return scalars

    def validate_fn(step: int) -> dict[str, float]:
        rows = validate(net, vset, cfg.device)
        val_rows[step] = rows
        history = run.read_json("validation.json") if run.file("validation.json").exists() else []
        history.append({"step": step, "minutes": (time.monotonic() - began) / 60, "rows": rows})
        run.write_json("validation.json", history)
        return summary(rows)

    settings = LoopSettings(
        steps=cfg.steps,
        schedule=Schedule(cfg.lr, cfg.warmup_steps, cfg.steps, cfg.final_lr_fraction),
        grad_clip=cfg.grad_clip, log_every=50, checkpoint_every=200,
        validate_every=cfg.validate_every, validate=validate_fn,
        label=f"deb {cfg.concept}",
        extra_state={"deb_meta": _meta(cfg)},
        stop_when=deadline.expired,
    )
    TrainingLoop(run, net, step_fn, settings, rng).run(resume=bool(args.resume))
    state = run.load_checkpoint() or {}
    stopped_early = int(state.get("step", cfg.steps)) < cfg.steps
    if stopped_early:
        print(f"\ndid deb train: --max-minutes {cfg.max_minutes} reached at step {state['step']}", file=sys.stderr)
    net.load_state_dict(state.get("model", net.state_dict()))
    rows = validate(net, vset, cfg.device)
    from did_deb_marris.pretrain import format_table

    table = format_table(rows, cfg.eps_rel)
    run.write_json("final_validation.json", {"step": int(state.get("step", 0)), "stopped_early": stopped_early,
                                             "minutes": (time.monotonic() - began) / 60, "rows": rows})
    print(table)
    return 0


def _initial_state(source: str) -> tuple[dict, dict]:
    """(model state, metadata) from a weights file or a run directory."""
    from did_deb_marris.block import load_weights

    path = Path(source)
    if path.is_dir():
        state = RunDir(path).load_checkpoint()
        if state is None or "deb_meta" not in state:
            raise ValueError(f"deb train: {source} holds no did deb train checkpoint")
        return state["model"], state["deb_meta"]
    net, meta = load_weights(path)
    return net.state_dict(), meta


def _meta(cfg) -> dict:
    return {"concept": cfg.concept, "max_actions": cfg.max_actions, "n_players": cfg.n_players,
            "eps_rel": cfg.eps_rel, "net": cfg.net_config().to_dict()}


def _export(args: argparse.Namespace) -> int:
    from did_deb_marris.block import save_weights

    run = RunDir(Path(args.run_dir))
    state = run.load_checkpoint()
    if state is None or "deb_meta" not in state:
        raise ValueError(f"deb export: {args.run_dir} holds no did deb train checkpoint")
    meta = dict(state["deb_meta"])
    net = DebMarrisNet(NetConfig(**meta["net"]))
    net.load_state_dict(state["model"])
    meta.update(step=int(state["step"]))
    if run.file("config.json").exists():
        cfg = run.read_json("config.json")
        meta.update(batch_size=cfg["batch_size"], lr=cfg["lr"], planned_steps=cfg["steps"])
    save_weights(args.out, net, meta)
    print(f"wrote {args.out} (step {meta['step']}, {sum(p.numel() for p in net.parameters())} parameters)")
    return 0


def _validation_set(args: argparse.Namespace, meta: dict) -> ValidationSet:
    """The seeded games of ``--games``, ``--sizes`` and ``--seed`` that weights with metadata ``meta`` serve."""
    from did_deb_marris.pretrain import ValidationSet

    if args.games < 1:
        raise ValueError(f"--games must be >= 1, got {args.games}")
    sizes = [s for s in args.sizes if s <= int(meta["max_actions"])]
    if not sizes:
        raise ValueError(f"--sizes names no size these weights serve (up to {meta['max_actions']} actions)")
    return ValidationSet(meta["concept"], sizes, args.games, args.seed, float(meta["eps_rel"]),
                         int(meta.get("n_players", 2)))


def _validate(args: argparse.Namespace) -> int:
    from did_deb_marris.block import load_weights, shipped_weights
    from did_deb_marris.pretrain import format_table, validate

    path = args.weights or shipped_weights(args.concept)
    net, meta = load_weights(path)
    net = net.double()
    vset = _validation_set(args, meta)
    rows = validate(net, vset)
    print(f"weights {path}: concept {meta['concept']}, step {meta.get('step')}, {args.games} games per size, "
          f"seed {args.seed}\n")
    print(format_table(rows, float(meta["eps_rel"])))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=2) + "\n")
    return 0


def _card(args: argparse.Namespace) -> int:
    from did_deb_marris.block import load_weights
    from did_deb_marris.pretrain import format_table, validate

    net, meta = load_weights(args.weights)
    run = RunDir(Path(args.run_dir))
    cfg = run.read_json("config.json")
    final = run.read_json("final_validation.json") if run.file("final_validation.json").exists() else {}
    records = run.metrics()
    if "minutes" not in final and run.file("validation.json").exists():
        history = run.read_json("validation.json")
        final = {**final, "minutes": history[-1]["minutes"]} if history else final
    vset = _validation_set(args, meta)
    rows = validate(net.double(), vset)
    ok_kl = all(r["kl"] <= 0.01 for r in rows)
    ok_viol = all(r["viol_p95_eps"] <= 1.0 for r in rows)
    n_params = sum(p.numel() for p in net.parameters())
    concept = meta["concept"].upper()
    last_loss = next((r["loss"] for r in reversed(records) if "loss" in r), float("nan"))
    sizes = ",".join(map(str, args.sizes))
    text = f"""# deb_marris weights: {concept}

Learned eps-ME {concept} block for two-player games with 2..{meta['max_actions']} actions per
player (one network, masks), relative epsilon **eps_rel = {meta['eps_rel']}** only (the block
raises for an absolute or a different epsilon). Input: the embedding Phi(G); output: the
dual of the embedded game, rescaled by 1/s_p per player for G.

* Architecture: {json.dumps(meta['net'])} ({n_params} parameters).
* Training: unsupervised, loss = mean dual objective f(alpha) over random embedded normal games,
  action counts drawn per game and player from U{{2..{meta['max_actions']}}}; batch {cfg['batch_size']},
  Adam lr {cfg['lr']} (warm-up {cfg['warmup_steps']}, exponential decay to {cfg['final_lr_fraction']}x over
  {cfg['steps']} planned steps), gradient clip {cfg['grad_clip']}, float32, seed {cfg['seed']}.
* Command: `{args.train_command or 'did deb train --concept ' + meta['concept']}`
  then `did deb export RUN_DIR {meta['concept']}.pt`.
* Steps done: {meta.get('step')} of {cfg['steps']} planned"""
    if final.get("stopped_early"):
        text += " (stopped by --max-minutes, before the schedule's end)"
    text += f""".
* Wall time: {final.get('minutes', float('nan')):.1f} min. Final training loss (mean f): {last_loss:.4f}.
* Hardware: {args.hardware}.

## Validation vs the exact block

Fresh seeded square games ({args.games} per size, seed {args.seed}, embedded normal games, float64),
exact solutions from `{type(vset.block).__name__}`. Targets: mean KL(exact‖block) <= 0.01 and
95th-percentile violation <= eps on every size: KL target {'met' if ok_kl else '**not met**'},
violation target {'met' if ok_viol else '**not met**'}.

{format_table(rows, float(meta['eps_rel']))}
Reproduce: `did deb validate --concept {meta['concept']} --games {args.games} --seed {args.seed} --sizes {sizes}`.
"""
    atomic_write_text(Path(args.out), text)
    print(text)
    return 0
