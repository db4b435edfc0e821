"""The README's dynamic-mechanism table is what ``benchmarks/dynamic_mechanisms.py`` makes from its stored JSON."""

import json

import pytest

from benchmark_helpers import ROOT, benchmark_module
from did_core.report import marked_section


def test_the_readme_table_is_the_stored_benchmark():
    pytest.importorskip("did_dynamic")
    module = benchmark_module("dynamic_mechanisms")
    rows = json.loads((ROOT / "benchmarks" / "results" / "dynamic_mechanisms.json").read_text())
    assert len(rows) == len(module.PUBLISHED) == 29
    assert marked_section(ROOT / "README.md", module.README_MARKER) == module.markdown(rows).strip()
    assert all(r["meets_target"] and r["vcg_within_0.01"] for r in rows)
