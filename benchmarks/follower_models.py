"""Does the max-entropy eps-equilibrium predict what learning followers do? Trained generators under two follower models.

One command, one table::

    python benchmarks/follower_models.py RUN_DIR [RUN_DIR ...] [--contexts 512] [--seed 12345]
        [--reference exact_newton] [--followers no_regret] [--out benchmarks/results/follower_models.md]

For every run (any task), the run's generator proposes interventions for the same
held-out contexts (the run's sampler, ``--seed``); the induced games are solved by
the reference block (the max-entropy eps-equilibrium, at the run's concept and
eps) and by each follower block (``no_regret``: the time-averaged play of
no-regret learners, with its default options). Per block the table shows the
designer's mean value with the intervention and with the task's baseline
intervention, the change, and the share of contexts where the intervention helps
under that block; per follower block, against the reference: the mean absolute
difference of the designer's value per context, the mean total-variation distance
between the two joint distributions of the followers' play, and the share of
contexts where both blocks agree whether the intervention helps.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.components import load_trained
from did_core.scoring import context_to
from did_core.evaluate import generate
from did_core.plugins import create
from did_core.runs import OutputRefused, atomic_write_text, output_file
from did_core.tasks import index_context


def solve_all(parts: Any, block: Any, context: dict[str, Tensor], x: Tensor, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """The designer's value ``[B]`` and the followers' joint play ``[B, prod A]`` under ``block``."""
    values, joints = [], []
    for start in range(0, x.shape[0], chunk):
        part = context_to(index_context(context, slice(start, start + chunk)), parts.device)
        xs = x[start:start + chunk].to(parts.device)
        with torch.no_grad():
            eq = parts.scorer(block).solve(part, xs)
            values.append(parts.objective.value(part, xs, eq).double().cpu())
            joints.append(eq.sigma.double().flatten(1).cpu())
    return torch.cat(values), torch.cat(joints)


def compare_run(run_dir: Path, contexts: int, seed: int, reference: str, followers: list[str]) -> list[dict[str, Any]]:
    """One row per block for the run in ``run_dir`` (see the module docstring)."""
    cfg, parts, _ = load_trained(run_dir)
    held_out = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    x, x0 = generate(parts, held_out)
    objective = parts.objective
    rows, ref = [], None
    for name in [reference, *followers]:
        block = create("blocks", name)
        value, joint = solve_all(parts, block, held_out, x)
        base, _ = solve_all(parts, block, held_out, x0)
        helps = objective.improved(value, base)
        row = {"run": run_dir.name, "task": cfg.task, "concept": cfg.concept, "eps": cfg.eps,
               "absolute_eps": cfg.absolute_eps, "block": name, "value": float(value.mean()),
               "baseline": float(base.mean()), "change": float((value - base).mean()),
               "helps": float(helps.double().mean())}
        if ref is None:
            ref = (value, joint, helps)
        else:
            row.update(value_gap=float((value - ref[0]).abs().mean()),
                       tv=float(0.5 * (joint - ref[1]).abs().sum(dim=1).mean()),
                       agree=float((helps == ref[2]).double().mean()))
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], contexts: int, seed: int) -> str:
    head = (f"{contexts} held-out contexts per run (seed {seed}); value = the designer's mean objective value "
            f"with the generator's intervention, baseline = with the task's baseline intervention; the gap, TV "
            f"and agreement columns compare each follower block with the first block of its run.\n\n"
            "| run | task | concept, eps | block | value | baseline | change | helps | |value gap| | TV of play "
            "| agree on helps |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        eps = f"{r['concept']}, {r['eps']:g} {'abs' if r['absolute_eps'] else 'rel'}"
        extra = (f"{r['value_gap']:.4f} | {r['tv']:.3f} | {r['agree']:.0%}" if "tv" in r else "- | - | -")
        lines.append(f"| {r['run']} | {r['task']} | {eps} | {r['block']} | {r['value']:.4f} | {r['baseline']:.4f} "
                     f"| {r['change']:+.4f} | {r['helps']:.0%} | {extra} |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="trained run directories")
    p.add_argument("--contexts", type=int, default=512)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--reference", default="exact_newton", help="the block the others are compared with")
    p.add_argument("--followers", nargs="+", default=["no_regret"], help="follower blocks to compare")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="also write the table (with the command and machine) here")
    args = p.parse_args(argv)
    if args.out:
        try:  # before the measurement: a missing folder, a device or a run's folder is refused now
            output_file(Path(args.out), force_flag=None)
        except OutputRefused as exc:
            p.error(str(exc))
    torch.set_num_threads(args.threads)
    rows = [row for run in args.runs for row in compare_run(run, args.contexts, args.seed, args.reference,
                                                               args.followers)]
    text = table(rows, args.contexts, args.seed)
    print(text)
    if args.out:
        stamp = datetime.date.today().isoformat()
        command = "python benchmarks/follower_models.py " + " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_text(args.out, f"# Follower models ({stamp}, {platform.processor() or platform.machine()}, "
                                    f"torch {torch.__version__}, {args.threads} thread)\n\n`{command}`\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
