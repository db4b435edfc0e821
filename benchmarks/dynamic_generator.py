"""Benchmark of one generator per setting (docs/dynamic.md, "One generator for a setting") against one trained
mechanism per cell.

For each setting, a :class:`did_dynamic.generator.CellGenerator` is trained on all the setting's published
cells at once (``did_dynamic.generator.train_generator``, run folders under ``--runs``; a finished run is
reused). Every cell's generated mechanism is then evaluated exactly on ``--profiles`` fresh profiles, beside
the per-cell mechanisms of the shipped files (their stored objectives, measured on 10^5 profiles by
benchmarks/dynamic_mechanisms.py) and VCG, and on one cell of a size the generator never saw (no per-cell
mechanism exists there: compared with VCG only). Printed and stored as Markdown and JSON.

    OMP_NUM_THREADS=1 python benchmarks/dynamic_generator.py [--only SETTING ...] [--steps 300]
        [--profiles 20000] [--runs runs/dynamic_generator] [--out benchmarks/results/dynamic_generator]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from did_core.affine_maximizer import vcg
from did_core.runs import RunDir, atomic_write_text, json_text, output_file
from did_dynamic.commands import SHIPPED
from did_dynamic.evaluation import evaluate
from did_dynamic.generator import train_generator
from did_dynamic.mechanism_file import read_mechanism
from did_dynamic.settings import CELLS, make_setting
from dynamic_mechanisms import shown_number

ROOT = Path(__file__).resolve().parent
#: A cell of each setting outside the published ones (the generator never trains on it).
UNSEEN = {"sales-sym": (6, 2), "sales-asym": (6, 2), "makespan-sym": (4, 3), "makespan-asym": (4, 3)}
SEED = 31_415


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=sorted(UNSEEN), help="these settings only")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--profiles", type=int, default=20_000)
    p.add_argument("--runs", type=Path, default=Path("runs/dynamic_generator"))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "dynamic_generator")
    return p.parse_args(argv)


def markdown(rows: list[dict], steps: int) -> str:
    lines = ["| setting | n | m | trained on | VCG | generator (+- s.e.) | per-cell mechanism |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        per_cell = f"{r['per_cell']:.4f}" if r["per_cell"] is not None else "-"
        lines.append(f"| {r['setting']} | {r['n']} | {r['m']} | {'yes' if r['seen'] else 'no'} | "
                     f"{shown_number(r['vcg'])} | {r['generator']:.4f} (+- {r['stderr']:.4f}) | {per_cell} |")
    seconds = {r["setting"]: r["train_seconds"] for r in rows}
    timing = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    profiles = rows[0]["profiles"] if rows else 0
    return "\n".join(lines) + (f"\n\nOne generator per setting, {steps} steps on all its published cells at once "
                               f"(training time, one thread: {timing}); {profiles} fresh profiles per evaluation "
                               f"(exact policies). Per-cell mechanism: the shipped file's objective (10^5 "
                               f"profiles of another stream).\n")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    json_path, md_path = output_file(args.out.with_suffix(".json")), output_file(args.out.with_suffix(".md"))
    rows = []
    for name in args.only or sorted(UNSEEN):
        cells = [make_setting(name, n, m) for n, m in CELLS[name]]
        started = time.monotonic()
        run = RunDir(args.runs / name).acquire()
        try:
            generator = train_generator(cells, run, args.steps)
        finally:
            run.release()
        seconds = time.monotonic() - started
        unseen = make_setting(name, *UNSEEN[name])
        with torch.no_grad():
            for setting in [*cells, unseen]:
                generated = evaluate(setting, generator(setting), args.profiles, SEED)
                base = evaluate(setting, vcg(setting.n, setting.mdp.num_states, setting.mdp.num_actions),
                                args.profiles, SEED)
                shipped = SHIPPED / f"{setting.key}.json"
                per_cell = read_mechanism(shipped).objective if shipped.is_file() else None
                rows.append({"setting": name, "n": setting.n, "m": setting.m, "seen": setting is not unseen,
                             "vcg": base.mean, "generator": generated.mean, "stderr": generated.stderr,
                             "per_cell": per_cell, "train_seconds": seconds, "profiles": args.profiles})
                print(f"{setting.key}: generator {generated.mean:.4f}, per cell {per_cell}, VCG {base.mean:.4f}",
                      flush=True)
    table = markdown(rows, args.steps)
    atomic_write_text(json_path, json_text(rows))
    atomic_write_text(md_path, table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
