"""Evaluation protocol: guarded interventions, local polish, reports regenerated from JSON, plots."""

import json
import re

import pytest
import torch

import toys
from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.plugins import create
from did_core.train import build_components, train

# The toy task (tests/toys.py); the block is the preferred installed exact block (toy_exact without plugins).
TINY = {"task": "toy_task", "steps": 3, "batch_size": 4, "eval_contexts": 6,
        "sampler_options": {"min_actions": 2, "max_actions": 3}, "generator_options": {"width": 8, "depth": 1}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("evalrun") / "run"
    train(resolve_train_config(TINY), path)
    return path


def test_guarded_is_never_worse_than_baseline_or_unguarded_under_exact(run_dir, capsys):
    assert main(["eval", str(run_dir), "--contexts", "6"]) == 0
    report = json.loads((run_dir / "report.json").read_text())
    exact = report["blocks"][report["meta"]["config"]["exact_block"]]
    # The toy task minimises -P(0, 0); the guard keeps the generator's bonus only where the exact block says it
    # is better.
    assert exact["guarded"]["metric"] <= exact["metric"] + 1e-12
    assert exact["guarded"]["metric"] <= exact["baseline"] + 1e-12
    assert report["meta"]["git_revision"] and report["meta"]["config"]["task"] == "toy_task"
    assert report["meta"]["command"].startswith("did eval")


def test_table_regenerates_from_json(run_dir, capsys):
    assert main(["eval", str(run_dir), "--contexts", "4"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--from-json"]) == 0
    assert capsys.readouterr().out.strip() == (run_dir / "report.md").read_text().strip()
    # The per-size table is labelled with what the task's sizes measure.
    assert "| actions of the larger player |" in (run_dir / "report.md").read_text()


def test_polish_never_worse_than_its_start():
    cfg = resolve_train_config(TINY)
    parts = build_components(cfg)
    block = create("blocks", cfg.exact_block)
    context = parts.sampler.sample(1, torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = parts.generator(context)
    scorer = parts.scorer(block)
    polished = scorer.polish(context, x, budget=40)

    def value(z):
        return scorer.value(context, z)

    assert value(polished) <= value(x) + 1e-12
    # Only real entries move: padded payoffs stay as the generator left them.
    real = parts.objective.intervention_mask(context)
    assert torch.equal(polished[~real], x[~real])


def test_polish_and_plots_end_to_end(run_dir, capsys):
    pytest.importorskip("matplotlib")
    code = main(["eval", str(run_dir), "--contexts", "2", "--polish", "--polish-budget", "10", "--workers", "1",
                 "--plots"])
    assert code == 0
    # Before polishing, the user is told how long it may take.
    assert re.search(r"up to 10 evaluations per context x 2 contexts x \d block\(s\) on 1 worker\(s\): at most about "
                     r"\d+\.\d min", capsys.readouterr().err)
    report = json.loads((run_dir / "report.json").read_text())
    polished = report["blocks"][report["meta"]["config"]["exact_block"]]["polished"]
    assert polished["budget"] == 10 and polished["under_block"]["contexts"] == 2
    # (task figures, such as the inverse task's simplex, are tested with their task)
    for name in ("per_size.png", "training_curves.png"):
        assert (run_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _notes(err: str) -> list[str]:
    """The ``did: note:`` lines of a command's stderr, after checking that no block warning reached it."""
    assert "did: warning" not in err and err.count("did not converge") == err.count("did: note:")
    return [line for line in err.splitlines() if line.startswith("did: note:")]


def test_unconverged_solves_are_one_note_counted_across_polish_workers(run_dir, capfd):
    """A block that gives up on some games: no warning per batch (nor per worker process), one note per command,
    with the counts stored in the report; the polish's count is the same in one process and in two workers."""
    stored = []
    with toys.stalled_plugin():
        for workers in ("1", "2"):
            assert main(["eval", str(run_dir), "--blocks", toys.TOY_STALLED, "--contexts", "4", "--polish",
                         "--polish-budget", "12", "--workers", workers]) == 0
            notes = _notes(capfd.readouterr().err)
            counts = json.loads((run_dir / "report.json").read_text())["blocks"][toys.TOY_STALLED]["convergence"]
            stored.append(counts)
            # 4 contexts x (generator, baseline, polished under the block, polished under the exact block)
            assert counts["evaluation"]["solves"] == 16 and counts["polish"]["solves"] >= 4
            assert 0 < counts["evaluation"]["unconverged"] < 16 and counts["polish"]["unconverged"] > 0
            assert len(notes) == 1 and all(
                f"{phase['unconverged']} of {phase['solves']}" in notes[0] for phase in counts.values())
            assert f"largest violation {max(p['worst_violation'] for p in counts.values()):.1e}" in notes[0]
    assert stored[0] == stored[1]


def test_train_notes_unconverged_solves_of_its_evaluation_once(tmp_path, capfd):
    with toys.stalled_plugin():
        assert main(["train", "--task", "toy_task", "--exact-block", toys.TOY_STALLED, "--steps", "2",
                     "--batch-size", "4", "--eval-contexts", "8", "--generator-options", "{width: 8, depth: 1}",
                     "--run-dir", str(tmp_path / "run")]) == 0
    notes = _notes(capfd.readouterr().err)
    counts = json.loads((tmp_path / "run" / "eval.json").read_text())[toys.TOY_STALLED]["convergence"]
    assert counts["evaluation"]["solves"] == 16 and 0 < counts["evaluation"]["unconverged"] < 16
    assert len(notes) == 1 and f"{toys.TOY_STALLED} {counts['evaluation']['unconverged']} of 16" in notes[0]


@pytest.mark.parametrize("argv, message", [
    (["--blocks", "nope"], "unknown block 'nope'"),
    (["--contexts", "0"], "--contexts"),
])
def test_eval_bad_arguments(run_dir, capsys, argv, message):
    assert main(["eval", str(run_dir), *argv]) == 2
    assert message in capsys.readouterr().err


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_from_json_accepts_a_report_file_and_rejects_others(run_dir, tmp_path, capsys):
    assert main(["eval", str(run_dir), "--contexts", "2"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run_dir / "report.json"), "--from-json"]) == 0
    assert capsys.readouterr().out.strip() == (run_dir / "report.md").read_text().strip()
    bad = tmp_path / "other.json"
    bad.write_text('{"x": 1}')
    assert main(["eval", str(bad), "--from-json"]) == 2
    assert "not a DID evaluation report" in capsys.readouterr().err


def test_change_metrics_carry_the_absolute_baseline():
    """A task that reports a change still shows what the baseline intervention itself achieves."""
    import types

    from did_core.report import markdown_table
    from did_core.results import BlockResult, format_eval, summarise

    objective = types.SimpleNamespace(report_change=True, minimize=False, improved=lambda v, b: v > b)
    value, baseline = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 4.0])
    summary = summarise(objective, value, baseline, torch.tensor([2, 2, 3]))
    assert summary.metric == pytest.approx(0.0) and summary.baseline == 0.0
    assert summary.value == pytest.approx(2.0) and summary.baseline_value == pytest.approx(2.0)
    assert summary.per_size["3"].baseline_value == pytest.approx(4.0)
    entry = BlockResult(summary, summary, metric_name="utility change", report_change=True, size_axis="size",
                        concept="cce", eps=0.05, absolute_eps=False, seed=0, guard_block="b", world_size=1)
    assert "(absolute 2.0000)" in format_eval({"b": entry})
    report = {"meta": {"task": "t", "contexts": 3, "seed": 0, "git_revision": "x"}, "blocks": {"b": entry.as_dict()}}
    assert "the baseline intervention's own value is 2.000" in markdown_table(report)
