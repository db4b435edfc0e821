"""``benchmarks/per_instance.py``: the generator, per-instance optimisation and the bound on the same contexts."""

import re

import pytest

from benchmark_helpers import benchmark_module
from did_core.plugins import registry


def _module():
    return benchmark_module("per_instance")


def _row(text: str, label: str) -> list[float]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [float(v) for v in re.findall(r"([+-]?\d+\.\d+) \(", line)]


@pytest.mark.parametrize("task,concept", [("contract", "cce"), ("scheduling", "ce")])
def test_no_column_beats_the_bound_and_per_instance_never_loses(task, concept, tmp_path):
    if task not in registry("tasks"):
        pytest.skip(f"task {task!r} is not loaded (did-plugins-{task} not installed, or left out by DID_LOAD_PLUGINS)")
    out = tmp_path / "table.md"
    assert _module().main(["--task", task, "--concept", concept, "--contexts", "3", "--steps", "2",
                           "--out", str(out)]) == 0
    text = out.read_text()
    assert "python benchmarks/per_instance.py --task" in text
    generator, guarded, optimised, bound = _row(text, "all")[:4]
    sign = 1 if task == "contract" else -1  # contracts: higher is better; makespan: lower
    assert sign * optimised >= -1e-9  # the per-instance optimisation keeps no intervention if nothing beats it
    assert sign * guarded >= -1e-9 and sign * (guarded - generator) >= -1e-9
    assert sign * (bound - optimised) >= -1e-9 and sign * (bound - guarded) >= -1e-9


def test_a_bad_generator_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "table.md"
    assert _module().main(["--generator", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "config.yaml" in err
    assert not out.exists()


def _stored(generator: str) -> dict:
    rows = [{"group": "all", "contexts": 4, "generator": {"mean": 0.1, "improved": 0.5},
             "guarded": {"mean": 0.2, "improved": 0.5}, "per-instance": {"mean": 0.3, "improved": 0.75},
             "bound": {"mean": 1.5, "improved": 1.0}},
            {"group": "2-5", "contexts": 4, "generator": {"mean": 0.1, "improved": 0.5},
             "guarded": None, "per-instance": {"mean": 0.3, "improved": 0.75}, "bound": None}]
    return {"command": "python benchmarks/per_instance.py --task contract", "task": "contract", "concept": "cce",
            "profile": "paper", "eps": 0.05, "relative_eps": True, "exact_block": "exact_newton", "contexts": 4,
            "seed": 7, "generator": generator, "generator_steps": 10, "steps": 2, "lr": 0.05,
            "generator_start": True, "seconds": 1.0, "budget": "", "metric": "utility change",
            "report_change": True, "size_axis": "actions", "rows": rows, "published": {"mean": 0.2, "improved": 0.75}}


def test_stored_results_go_into_the_readme_and_the_model_card_between_their_markers(tmp_path, monkeypatch, capsys):
    import json

    module = _module()
    folder = tmp_path / "shipped"
    folder.mkdir()
    card = folder / "MODEL_CARD.md"
    card.write_text("# card\n\nnotes\n<!-- per-instance:start -->\nold\n<!-- per-instance:end -->\n\n## Evaluation\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- per-instance:start -->\n<!-- per-instance:end -->\ntail\n")
    monkeypatch.setattr(module, "README", readme)
    stored = tmp_path / "r.json"
    stored.write_text(json.dumps(_stored(str(folder))))
    assert module.main(["--from-json", str(stored), "--readme"]) == 0
    for path in (readme, card):
        text = path.read_text()
        assert "| all | 4 | +0.1000 (50%) | +0.2000 (50%) | +0.3000 (75%) | +1.5000 (100%) | +0.2000 (75%) |" in text
        assert "| 2-5 | 4 | +0.1000 (50%) | - | +0.3000 (75%) | - | - |" in text
    assert "old" not in card.read_text() and card.read_text().endswith("## Evaluation\n")
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("tail\n")

    # A card without the markers: one line, and neither file changes.
    card.write_text("# card\n")
    before = readme.read_text()
    assert module.main(["--from-json", str(stored), "--readme"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "per-instance:start" in err
    assert readme.read_text() == before and card.read_text() == "# card\n"


def test_the_all_row_carries_the_published_exact_block_figure():
    assert _module().published("contract", "cce") == (0.20, 0.75)
    assert _module().published("contract", "nash") is None
