"""The paper-profile results table, regenerated from the stored evaluation JSON of the shipped generators.

    python benchmarks/paper_results.py            # print the table, write benchmarks/results/paper_results.md
    python benchmarks/paper_results.py --readme   # also replace the table in README.md

Nothing is recomputed: every number of ours comes from a shipped generator's
``report.json`` (``did eval``, under the exact block) found through its task
plugin, and from the extra reports in ``benchmarks/results/paper_extra/`` (a
generator trained through a learned block, evaluated under the exact one). The
published column is the method's paper (two players, up to 16 actions; a
learned block per concept), listed here as constants. ``bound`` is the task's
bound on the same contexts (no intervention beats it; ``-`` where the task knows
none): a published number beyond it cannot be reached in this formulation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from did_core.report import replace_marked

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
EXTRA = RESULTS / "paper_extra"
README = HERE.parent / "README.md"
#: The README's table sits between ``<!-- paper-results:start -->`` and ``<!-- paper-results:end -->``.
MARKER = "paper-results"

#: (task, concept) -> published (learned block, +local, exact block, +local): (value, share improved or None).
PUBLISHED: dict[tuple[str, str], tuple[tuple[float, float | None], ...]] = {
    ("contract", "ce"): ((0.25, 0.79), (0.51, 0.97), (0.05, 0.52), (0.29, 0.93)),
    ("contract", "cce"): ((0.33, 0.83), (0.59, 0.98), (0.20, 0.75), (0.52, 0.97)),
    ("inverse", "ce"): ((0.056, None), (0.024, None), (0.175, None), (0.133, None)),
    ("inverse", "cce"): ((0.043, None), (0.013, None), (0.071, None), (0.028, None)),
    ("scheduling", "ce"): ((-0.339, 0.88), (-0.408, 1.0), (-0.096, 0.57), (-0.352, 0.75)),
    ("scheduling", "cce"): ((-0.211, 0.99), (-0.240, 1.0), (-0.050, 0.84), (-0.077, 0.97)),
}
METRICS = {"contract": "utility change (share improved)", "inverse": "mean KL(target \\|\\| sigma)",
           "scheduling": "makespan change (share decreased)"}
#: Fewer held-out contexts than this (e.g. a polished subset) give no verdict against the paper.
MIN_CONTEXTS = 512
#: +1: higher is better (the principal's utility); -1: lower is better.
BETTER = {"contract": 1, "inverse": -1, "scheduling": -1}


def _published(value: tuple[float, float | None]) -> str:
    number, share = value
    return f"{number:+.3f} ({100 * share:.0f}%)" if share is not None else f"{number:.3f}"


def _ours(summary: dict[str, Any] | None, change: bool) -> str:
    if not summary:
        return "-"
    if change:
        return f"{summary['metric']:+.3f} ({100 * summary['improved_share']:.0f}%)"
    return f"{summary['metric']:.3f}"


def shipped_reports() -> dict[tuple[str, str], dict[str, Any]]:
    """(task, concept) -> the stored report of every shipped generator of the installed task plugins."""
    from did_core.shipped import shipped_concepts, shipped_folder

    found = {}
    for task, concept in PUBLISHED:
        try:
            concepts = shipped_concepts(task)
        except Exception:  # noqa: BLE001 - a task plugin that is not installed has no row of ours
            continue
        if concept in concepts:
            found[(task, concept)] = json.loads((shipped_folder(task, concept) / "report.json").read_text())
    return found


def _row(task: str, concept: str, report: dict[str, Any] | None, label: str) -> str:
    published = PUBLISHED[(task, concept)]
    cells = [_published(v) for v in published]
    ours = ["-"] * 6
    if report is None:
        label = "-"
    else:
        config = report["meta"]["config"]
        exact = report["blocks"].get(config["exact_block"]) or next(iter(report["blocks"].values()))
        change = bool(exact.get("report_change", task != "inverse"))
        polished = (exact.get("polished") or {}).get("under_exact")
        beats = BETTER[task] * (exact["metric"] - published[2][0]) > 0
        bound = exact.get("bound")
        verdict = "yes" if beats else "no"
        if not beats and bound and BETTER[task] * (published[2][0] - bound["metric"]) > 0:
            verdict = "no: beyond the bound"
        if int(report["meta"]["contexts"]) < MIN_CONTEXTS:
            verdict = f"- (under {MIN_CONTEXTS} contexts)"
        limit = "-" if not bound else format(bound["metric"], "+.3f" if change else ".3f")
        ours = [_ours(exact, change), _ours(exact.get("guarded"), change), _ours(polished, change), limit, verdict,
                f"{report['meta']['contexts']}"]
        trained = int(report["meta"].get("trained_steps", config["steps"]))
        label += f", {trained} steps" if trained == int(config["steps"]) else \
            f", stopped at {trained} of {int(config['steps'])} steps"
        own = report["blocks"].get(config["block"])
        if config["block"] != config["exact_block"] and own:
            label += f"; under its own block {_ours(own, change)}"
    return f"| {task}: {METRICS[task]} | {concept.upper()} | " + " | ".join(cells) + " | " + " | ".join(ours) + \
        f" | {label} |"


def table() -> str:
    """The Markdown table: published columns, then ours under the exact block, one row per task and concept."""
    reports = shipped_reports()
    lines = [
        "| task | concept | paper: learned block | +local | paper: exact block | +local | ours: exact block | "
        "guarded | +local | bound | beats paper's exact block | held-out contexts | trained through |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, concept in PUBLISHED:
        lines.append(_row(task, concept, reports.get((task, concept)), "exact_newton (shipped)"))
        for path in sorted(EXTRA.glob(f"{task}_{concept}_*.json")):
            report = json.loads(path.read_text())
            lines.append(_row(task, concept, report, f"{report['meta']['config']['block']} ({path.name})"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="also replace the table between the README's markers")
    args = parser.parse_args(argv)
    text = table()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "paper_results.md").write_text(
        "# Paper-profile results\n\nRegenerated by `python benchmarks/paper_results.py` from the stored JSON.\n\n"
        + text + "\n")
    if args.readme:
        replace_marked(README, MARKER, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
