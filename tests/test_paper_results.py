"""The README's paper-profile table is what ``benchmarks/paper_results.py`` makes from the stored reports."""

import pytest

from benchmark_helpers import ROOT, benchmark_module
from did_core.plugins import registry


def _module():
    return benchmark_module("paper_results")


def test_the_readme_table_is_regenerated_from_the_stored_reports():
    module = _module()
    missing = sorted({task for task, _ in module.PUBLISHED} - set(registry("tasks").names()))
    if missing:  # the README's rows of ours come from the shipped generators of every task plugin
        pytest.skip(f"task(s) {', '.join(missing)} not loaded (their plugins not installed, or left out by "
                    f"DID_LOAD_PLUGINS)")
    readme = (ROOT / "README.md").read_text()
    stored = readme.split(module.START, 1)[1].split(module.END, 1)[0].strip()
    assert stored == module.table()


def test_every_published_row_is_listed_once_and_ours_come_from_shipped_reports():
    module = _module()
    rows = [line for line in module.table().splitlines()[2:] if "(shipped)" in line or line.endswith("| - |")]
    assert len(rows) == len(module.PUBLISHED) == 6
    for (task, concept), report in module.shipped_reports().items():
        exact = report["blocks"][report["meta"]["config"]["exact_block"]]
        assert report["meta"]["config"]["task"] == task and report["meta"]["config"]["concept"] == concept
        row = next(r for r in rows if r.startswith(f"| {task}:") and f"| {concept.upper()} |" in r)
        assert f"{exact['metric']:+.3f}" in row or f"{exact['metric']:.3f}" in row


def test_a_small_subset_gives_no_verdict_against_the_paper():
    module = _module()
    report = {"meta": {"contexts": 16, "config": {"exact_block": "e", "block": "e", "steps": 10}},
              "blocks": {"e": {"metric": -0.9, "improved_share": 1.0, "report_change": True}}}
    row = module._row("scheduling", "cce", report, "x")
    assert "| - (under 512 contexts) |" in row and "| yes |" not in row
    report["meta"]["contexts"] = 1024
    assert "| yes |" in module._row("scheduling", "cce", report, "x")
