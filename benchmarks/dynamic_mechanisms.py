"""Benchmark of the dynamic affine maximizers (docs/dynamic.md): every published cell (sequential sales and task
scheduling, symmetric and asymmetric; the gridworld), VCG ours against VCG published, and the trained affine
maximizer against the best published method.

Each cell is a run of ``did train --task dynamic`` under ``--runs`` (trained when its folder holds no finished run,
resumed when it holds an unfinished one, else reused). Both mechanisms are then evaluated exactly on the same
``--profiles`` fresh type profiles (a fixed seed, not the runs' own streams). The table is printed and stored as
Markdown and JSON; ``--ship`` copies each run's mechanism file into did-plugins-dynamic's shipped folder with the
objective measured here.

    OMP_NUM_THREADS=1 python benchmarks/dynamic_mechanisms.py [--only SETTING ...] [--profiles 100000]
        [--runs runs/dynamic] [--out benchmarks/results/dynamic_mechanisms] [--ship] [--train-flags "..."] [--readme]
    python benchmarks/dynamic_mechanisms.py --from-json --readme   # the README's table from the stored JSON
        (measured here: 53 minutes on one thread to train all 29 cells, 8 more to evaluate them)

The published figures (means of 10^4 profiles; standard errors below 0.007, 0.004, 0.02, 0.03 and 0.05 for the
five tables) are those of Curry et al., "Automated Design of Affine Maximizer Mechanisms in Dynamic Settings"
(AAAI 2024), Tables 1-5: VCG and the best of grid search, zeroth-order and regularised-LP gradients. A cell
meets its target when ours is at least the best published (revenue) or at most it (makespan) up to the
published standard error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from did_core.affine_maximizer import vcg
from did_core.cli import main as did
from did_core.report import replace_marked
from did_core.runs import atomic_write_text, json_text, output_file
from did_dynamic.commands import SHIPPED
from did_dynamic.evaluation import evaluate
from did_dynamic.mechanism_file import mechanism_json, read_mechanism
from did_dynamic.settings import SETTINGS, all_cells, make_setting

ROOT = Path(__file__).resolve().parent
README = ROOT.parent / "README.md"
README_MARKER = "dynamic-mechanisms"

#: (setting, n, m) -> (VCG published, best published).
PUBLISHED = {
    ("sales-sym", 2, 2): (0.0, 0.4939), ("sales-sym", 3, 2): (0.4999, 0.6777), ("sales-sym", 4, 2): (0.8000, 0.8783),
    ("sales-sym", 5, 2): (0.9996, 1.0078), ("sales-sym", 2, 3): (0.0, 0.4715), ("sales-sym", 3, 3): (0.0, 0.7240),
    ("sales-sym", 4, 3): (0.6007, 0.9104), ("sales-sym", 5, 3): (0.9988, 1.0743),
    ("sales-asym", 2, 2): (0.0, 0.3665), ("sales-asym", 3, 2): (0.2348, 0.4123),
    ("sales-asym", 4, 2): (0.3089, 0.4508), ("sales-asym", 5, 2): (0.3350, 0.4645),
    ("sales-asym", 2, 3): (0.0, 0.3208), ("sales-asym", 3, 3): (0.0, 0.4354),
    ("sales-asym", 4, 3): (0.2276, 0.4751), ("sales-asym", 5, 3): (0.3193, 0.4976),
    ("makespan-sym", 2, 4): (1.0336, 0.9132), ("makespan-sym", 2, 5): (1.0116, 0.8820),
    ("makespan-sym", 3, 4): (0.6111, 0.5967), ("makespan-sym", 3, 5): (0.5662, 0.5429),
    ("makespan-asym", 2, 4): (1.8312, 1.5978), ("makespan-asym", 2, 5): (1.9651, 1.6347),
    ("makespan-asym", 3, 4): (1.4299, 1.3242), ("makespan-asym", 3, 5): (1.4644, 1.3256),
    ("gridworld", 2, 3): (0.7547, 1.5464), ("gridworld", 3, 3): (1.2812, 1.9251), ("gridworld", 4, 3): (1.8683, 2.3009),
    ("gridworld", 5, 3): (2.3563, 2.5989), ("gridworld", 2, 4): (1.0402, 1.6134),
}
#: The published standard error bound of each setting's table.
PUBLISHED_STDERR = {"sales-sym": 0.007, "sales-asym": 0.004, "makespan-sym": 0.02, "makespan-asym": 0.03,
                    "gridworld": 0.05}
#: How cells without a run are trained (as most shipped mechanisms were; docs/dynamic.md).
TRAIN_FLAGS = "--steps 600 --starts 4 --validate-every 150 --validation-profiles 4000"
#: The seed of the benchmark's own evaluation profiles.
SEED = 20_240_326


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=SETTINGS, help="these settings only (the other rows are kept)")
    p.add_argument("--profiles", type=int, default=100_000, help="type profiles per evaluation (default 100000)")
    p.add_argument("--runs", type=Path, default=Path("runs/dynamic"), help="the runs' parent folder")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "dynamic_mechanisms", help="stem of .md/.json")
    p.add_argument("--ship", action="store_true", help="copy each run's mechanism into the shipped folder")
    p.add_argument("--from-json", action="store_true", help="no training or evaluation: the table from the stored "
                   "JSON (--out)")
    p.add_argument("--readme", action="store_true", help="also put the table between the README's "
                   f"<!-- {README_MARKER}:start/end --> markers")
    p.add_argument("--train-flags", default=TRAIN_FLAGS,
                   help=f"did train flags for cells still to train (default {TRAIN_FLAGS!r})")
    return p.parse_args(argv)


def run_cell(setting: str, n: int, m: int, runs: Path, extra: list[str]) -> Path:
    """The finished run of the cell (trained or resumed here when needed)."""
    folder = runs / f"{setting}_n{n}_m{m}"
    if not (folder / "mechanism.json").is_file():
        argv = (["train", "--resume", str(folder)] if (folder / "config.json").is_file() else
                ["train", "--task", "dynamic", "--setting", setting, "--n", str(n), "--m", str(m),
                 "--run-dir", str(folder), *extra])
        if did(argv) != 0:
            raise SystemExit(f"did {' '.join(argv)} failed")
    return folder


def measure(setting_name: str, n: int, m: int, folder: Path, profiles: int) -> dict:
    setting = make_setting(setting_name, n, m)
    trained = read_mechanism(folder / "mechanism.json").mechanism
    started = time.monotonic()
    ours = evaluate(setting, trained, profiles, SEED)
    base = evaluate(setting, vcg(n, setting.mdp.num_states, setting.mdp.num_actions), profiles, SEED)
    vcg_published, best_published = PUBLISHED[(setting_name, n, m)]
    sign = 1.0 if setting.maximize else -1.0
    margin = sign * (ours.mean - best_published)
    return {"setting": setting_name, "n": n, "m": m, "objective": "revenue" if setting.maximize else "makespan",
            "vcg_published": vcg_published, "vcg_ours": base.mean, "vcg_stderr": base.stderr,
            "best_published": best_published, "ama_ours": ours.mean, "ama_stderr": ours.stderr,
            "margin": margin, "meets_target": margin >= -PUBLISHED_STDERR[setting_name],
            "vcg_within_0.01": abs(base.mean - vcg_published) <= 0.01, "profiles": profiles,
            "seconds": time.monotonic() - started, "mechanism": mechanism_json(setting, trained, ours)}


def shown_number(value: float) -> str:
    """Four decimals, a rounding of zero shown as 0.0000 (not -0.0000)."""
    return f"{value if round(value, 4) != 0 else 0.0:.4f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| setting | n | m | VCG published | VCG ours | best published | AMA ours (+- s.e.) | better by | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['n']} | {r['m']} | {r['vcg_published']:.4f} | {shown_number(r['vcg_ours'])} | "
                     f"{r['best_published']:.4f} | {r['ama_ours']:.4f} (+- {r['ama_stderr']:.4f}) | "
                     f"{r['margin']:+.4f} | {'met' if r['meets_target'] else 'MISSED'} |")
    met = sum(r["meets_target"] for r in rows)
    vcg_ok = sum(r["vcg_within_0.01"] for r in rows)
    lines.append("")
    lines.append(f"{met}/{len(rows)} cells at least as good as the best published (up to its standard error); "
                 f"VCG within 0.01 of the published figure in {vcg_ok}/{len(rows)}. {rows[0]['profiles'] if rows else 0} "
                 f"type profiles per evaluation, exact policies (alpha = 0). 'better by': ours minus published for "
                 f"revenue, published minus ours for makespan.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    json_path, md_path = output_file(args.out.with_suffix(".json")), output_file(args.out.with_suffix(".md"))
    if args.from_json:
        table = markdown(json.loads(json_path.read_text()))
        print(table, end="")
        if args.readme:
            replace_marked(README, README_MARKER, table)
        return 0
    kept = json.loads(json_path.read_text()) if args.only and json_path.is_file() else []
    kept = [r for r in kept if r["setting"] not in args.only] if args.only else []
    rows = list(kept)
    for setting, n, m in all_cells():
        if args.only and setting not in args.only:
            continue
        folder = run_cell(setting, n, m, args.runs, shlex.split(args.train_flags))
        row = measure(setting, n, m, folder, args.profiles)
        rows.append(row)
        print(f"{setting} n={n} m={m}: VCG {row['vcg_ours']:.4f} (published {row['vcg_published']:.4f}), AMA "
              f"{row['ama_ours']:.4f} (best published {row['best_published']:.4f})", flush=True)
        if args.ship:
            atomic_write_text(SHIPPED / f"{setting}_n{n}_m{m}.json", json_text(row["mechanism"]))
    order = {cell: i for i, cell in enumerate(all_cells())}
    rows.sort(key=lambda r: order[(r["setting"], r["n"], r["m"])])
    table = markdown(rows)
    atomic_write_text(json_path, json_text(rows))
    atomic_write_text(md_path, table)
    print(table, end="")
    if args.readme:
        replace_marked(README, README_MARKER, table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
