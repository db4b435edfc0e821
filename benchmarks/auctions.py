"""Benchmark of the auction designs (docs/auctions.md): every target with our number, the optimum or
published number and its source.

Each target is a run of ``did train --task menu|ama`` under ``--runs`` (trained when its folder holds no
finished run, resumed when it holds an unfinished one, else reused) followed by ``did eval RUN_DIR`` on
``--samples`` fresh samples of a fixed seed; grid targets also solve the LP on the grid the menu was
trained for and report the learned menu on the same finite set against it. The table is printed and
stored as Markdown and JSON.

    OMP_NUM_THREADS=1 python benchmarks/auctions.py [--only NAME ...] [--samples 1000000]
        [--runs runs/auctions] [--out benchmarks/results/auctions] [--ship]

``--only`` reruns some targets and keeps the stored rows of the others. ``--ship`` copies each finished
run's mechanism into did-plugins-auctions' shipped folder: ``NAME.json`` (a menu or affine maximizer of one
distribution, exchange form) and, for menu runs, ``generators/NAME/`` (the run's config and weights, which
``did design menu`` reads).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from did_core.cli import main as did
from did_core.runs import atomic_write_text, output_file

ROOT = Path(__file__).resolve().parent
SHIPPED = ROOT.parent / "plugins" / "tasks_auctions" / "did_auctions" / "shipped"


@dataclass(frozen=True)
class Target:
    """A benchmark target: its run's ``did train`` flags (after ``--task``), the goal it must reach (or
    ``None``: compared only) and the LP grid it is evaluated on (0: none)."""

    name: str
    task: str
    flags: tuple[str, ...]
    goal: float | None = None
    points: int = 0


TARGETS = (  # in the order they are trained (the most important first)
    Target("menu_additive_2", "menu", ("--low", "0", "0", "--high", "1", "1", "--steps", "1000"), goal=0.548),
    Target("menu_unit_demand_2", "menu", ("--valuation", "unit_demand", "--steps", "1000"), goal=0.384),
    Target("menu_additive_2_grid20", "menu", ("--points", "20", "--types", "1024", "--steps", "800"), points=20),
    Target("ama_2x2", "ama", ("--bidders", "2", "--items", "2", "--steps", "2000"), goal=0.86),
    Target("family_unit_demand_c01", "menu", ("--valuation", "unit_demand", "--shift", "0", "1", "--points", "10",
                                              "--members", "8", "--types", "128", "--steps", "1000"), points=10),
    Target("family_additive_c01", "menu", ("--shift", "0", "1", "--points", "10", "--members", "8", "--types",
                                           "128", "--steps", "1000"), points=10),
    Target("menu_additive_3", "menu", ("--low", "0", "0", "0", "--high", "1", "1", "1", "--options", "32",
                                       "--types", "1024", "--steps", "1000")),
    Target("menu_additive_4_16_4_7", "menu", ("--low", "4", "4", "--high", "16", "7", "--options", "32",
                                              "--steps", "3000")),
    Target("ama_2x3", "ama", ("--bidders", "2", "--items", "3", "--steps", "2000")),
    Target("ama_3x2", "ama", ("--bidders", "3", "--items", "2", "--steps", "2000")),
    Target("menu_unit_demand_2_grid20", "menu", ("--valuation", "unit_demand", "--points", "20", "--types", "1024",
                                                 "--steps", "800"), points=20),
)


def finished(run: Path) -> bool:
    """Has ``run`` trained all its steps (its checkpoint at the configured step count)?"""
    if not (run / "checkpoint.pt").is_file():
        return False
    steps = json.loads((run / "config.json").read_text())["settings"]["steps"]
    return int(torch.load(run / "checkpoint.pt", weights_only=True)["step"]) >= steps


def run_target(target: Target, runs: Path, samples: int) -> list[dict]:
    """Train (or resume, or reuse) the target's run, evaluate it; return its report rows with the target."""
    run = runs / target.name
    began = time.monotonic()
    if not finished(run):
        argv = ["train", "--resume", str(run)] if (run / "config.json").is_file() else \
            ["train", "--task", target.task, *target.flags, "--run-dir", str(run)]
        if did(argv + ["--samples", "1000"]) != 0:
            raise SystemExit(f"training {target.name} failed")
    trained_s = time.monotonic() - began
    eval_flags = ["--points", str(target.points)] if target.points else []
    if did(["eval", str(run), "--samples", str(samples), *eval_flags]) != 0:
        raise SystemExit(f"evaluating {target.name} failed")
    report = json.loads((run / "report.json").read_text())
    rows = report.get("menus") or report.get("auctions")
    return [{"target": target.name, "goal": target.goal, "train_s_this_session": round(trained_s, 1),
             "step": report["step"], **row} for row in rows]


def table(rows: list[dict], samples: int) -> str:
    """The results as Markdown."""
    lines = [f"| target | member | ours ({samples} samples) | goal | reference | source | LP (grid) | "
             f"ours on grid | ours / LP | polished / LP |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["target"], r["name"], f"{r['revenue']:.4f}", "-" if r["goal"] is None else f">= {r['goal']}",
                 "-" if r["reference"] is None else f"{r['reference']:.4f}", r["source"] or "-",
                 f"{r['lp']:.4f} ({r['points']} points)" if "lp" in r else "-",
                 f"{r['menu_on_grid']:.4f}" if "lp" in r else "-",
                 f"{r['ratio_to_lp']:.4f}" if "lp" in r else "-",
                 f"{r['polished_ratio_to_lp']:.4f}" if "polished_ratio_to_lp" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=[t.name for t in TARGETS])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--runs", type=Path, default=Path("runs") / "auctions")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "auctions")
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args(argv)
    md, js = output_file(args.out.with_suffix(".md")), output_file(args.out.with_suffix(".json"))
    args.runs.mkdir(parents=True, exist_ok=True)
    kept = json.loads(js.read_text())["rows"] if js.is_file() and args.only else []
    rows = [r for r in kept if r["target"] not in args.only] if args.only else []
    order = [t.name for t in TARGETS]
    for target in TARGETS:
        if args.only is None or target.name in args.only:
            rows += run_target(target, args.runs, args.samples)
            if args.ship:
                ship(target, args.runs / target.name)
            rows.sort(key=lambda r: order.index(r["target"]))
            write(md, js, rows, args.samples)  # after every target: a long session keeps what it measured
    print(table(rows, args.samples))
    return 0


def write(md: Path, js: Path, rows: list[dict], samples: int) -> None:
    """The table as Markdown and the rows as JSON."""
    header = (f"# Auction benchmark\n\n`OMP_NUM_THREADS=1 python benchmarks/auctions.py`, {platform.machine()} CPU, "
              f"torch {torch.__version__}; exact revenue on {samples} fresh samples (seed 12345).\n\n")
    atomic_write_text(md, header + table(rows, samples) + "\n")
    atomic_write_text(js, json.dumps({"samples": samples, "rows": rows}, indent=2) + "\n")


def ship(target: Target, run: Path) -> None:
    """Copy a finished run's mechanism into the shipped folder (see the module docstring)."""
    single = run / ("ama.json" if target.task == "ama" else "menu.json")
    if single.is_file() and target.points == 0:
        atomic_write_text(SHIPPED / f"{target.name}.json", single.read_text())
    if target.task == "menu" and (target.points == 0 or "--shift" in target.flags):  # a one-grid menu: no generator
        folder = SHIPPED / "generators" / target.name
        folder.mkdir(parents=True, exist_ok=True)
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        atomic_write_text(folder / "config.json", (run / "config.json").read_text())
        torch.save({"model": state["model"], "step": state["step"]}, folder / "checkpoint.pt")


if __name__ == "__main__":
    sys.exit(main())
