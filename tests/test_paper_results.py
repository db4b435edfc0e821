"""The README's paper-profile table is what ``benchmarks/paper_results.py`` makes from the stored reports."""

import pytest

from benchmark_helpers import ROOT, benchmark_module
from did_core.plugins import registry
from did_core.report import marked_section, replace_marked


def _module():
    return benchmark_module("paper_results")


def test_the_readme_table_is_regenerated_from_the_stored_reports():
    module = _module()
    missing = sorted({task for task, _ in module.PUBLISHED} - set(registry("tasks").names()))
    if missing:  # the README's rows of ours come from the shipped generators of every task plugin
        pytest.skip(f"task(s) {', '.join(missing)} not loaded (their plugins not installed, or left out by "
                    f"DID_LOAD_PLUGINS)")
    assert marked_section(ROOT / "README.md", module.MARKER) == module.table()


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


@pytest.mark.parametrize("document", ["no markers", "<!-- t:end -->\nx\n<!-- t:start -->",
                                      "<!-- t:start -->a<!-- t:end --><!-- t:start -->b<!-- t:end -->"])
def test_a_file_without_its_markers_once_and_in_order_is_refused_and_unchanged(tmp_path, document):
    path = tmp_path / "README.md"
    path.write_text(document)
    with pytest.raises(ValueError, match="<!-- t:start --> ... <!-- t:end -->"):
        replace_marked(path, "t", "table")
    assert path.read_text() == document


def test_only_the_marked_section_is_replaced(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# Title\n<!-- t:start -->\nold\n<!-- t:end -->\ntail\n")
    replace_marked(path, "t", "| a |\n|---|\n")
    assert path.read_text() == "# Title\n<!-- t:start -->\n| a |\n|---|\n<!-- t:end -->\ntail\n"
    assert marked_section(path, "t") == "| a |\n|---|"


def test_a_stored_result_names_its_command_and_a_repository_folder_relatively(tmp_path):
    import json

    from did_core.report import command_line, within, write_result

    command = command_line("benchmarks/x.py", ["--out", "a b.md"])
    assert command == "python benchmarks/x.py --out 'a b.md'"
    write_result(tmp_path / "r.md", "Title", command, "| t |", {"rows": [1]}, tail="\n![f](f.png)\n")
    expected = "# Title\n\n`python benchmarks/x.py --out 'a b.md'`\n\n| t |\n\n![f](f.png)\n"
    assert (tmp_path / "r.md").read_text() == expected
    assert json.loads((tmp_path / "r.json").read_text()) == {"command": command, "rows": [1]}
    (tmp_path / "repo" / "plugins" / "p").mkdir(parents=True)
    assert within(tmp_path / "repo" / "plugins" / "p", tmp_path / "repo") == "plugins/p"
    assert within(tmp_path / "elsewhere", tmp_path / "repo") == str(tmp_path / "elsewhere")
