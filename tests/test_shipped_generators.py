"""Shipped generators: ``did ship`` writes one from a run, ``did eval --shipped`` evaluates it as the run."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
import toys

from did_core.cli import main
from did_core.config import TrainConfig, resolve_train_config
from did_core.train import train

TINY = {"task": toys.TOY_TASK, "steps": 4, "batch_size": 4, "eval_contexts": 6, "checkpoint_every": 2,
        "log_every": 1, "warmup_steps": 1, "sampler_options": {"min_actions": 2, "max_actions": 3},
        "generator_options": {"width": 8, "depth": 1}}


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def trained(tmp_path) -> tuple[Path, str]:
    """A finished toy run with a report (``did eval``) and its concept."""
    cfg = resolve_train_config(TINY)
    train(cfg, tmp_path / "run")
    assert main(["eval", str(tmp_path / "run")]) == 0
    return tmp_path / "run", cfg.concept


@pytest.fixture
def shipping(monkeypatch, tmp_path):
    """Make the toy task ship the generators under ``tmp_path / 'shipped'``."""
    from did_core.plugins import registry

    folder = tmp_path / "shipped"
    folder.mkdir(exist_ok=True)  # did ship creates the concept's folder, not its parent
    tasks = registry("tasks")
    entry = tasks.get(toys.TOY_TASK)
    monkeypatch.setitem(tasks._entries, toys.TOY_TASK,
                        dataclasses.replace(entry, value=dataclasses.replace(entry.value, shipped=folder)))
    return folder


def test_training_records_its_seconds_and_hardware(trained):
    run, _ = trained
    records = json.loads((run / "metrics.json").read_text())
    seconds = [r["elapsed_s"] for r in records]
    assert seconds == sorted(seconds) and seconds[0] > 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["elapsed_s"] >= seconds[-1] and "torch" in state["hardware"]


def test_ship_writes_a_small_weights_only_folder_with_a_model_card(trained, tmp_path, capsys):
    run, concept = trained
    notes = tmp_path / "notes.md"
    notes.write_text("Trained for a test.\n")
    dest = tmp_path / "shipped" / concept
    dest.parent.mkdir()  # did ship creates the concept's folder, not its parent
    assert main(["ship", str(run), str(dest), "--notes", str(notes)]) == 0
    names = {p.name for p in dest.iterdir()}
    assert {"checkpoint.pt", "config.yaml", "metrics.json", "report.json", "report.md", "MODEL_CARD.md",
            "learning_curve.png"} <= names
    state = torch.load(dest / "checkpoint.pt", weights_only=True)
    assert set(state) == {"model", "step", "elapsed_s", "hardware"} and state["step"] == 4
    assert "PayoffGenerator" in (dest / "MODEL_CARD.md").read_text()
    full = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(state["model"][k], full[k]) for k in full)
    card = (dest / "MODEL_CARD.md").read_text()
    report = json.loads((run / "report.json").read_text())
    exact = report["meta"]["config"]["exact_block"]
    assert "4 of 4 steps" in card and "Trained for a test." in card and "learning_curve.png" in card
    assert f"{report['blocks'][exact]['metric']:.4f}" in card
    assert json.loads((dest / "report.json").read_text()) == report


def test_eval_shipped_equals_eval_of_the_run_and_writes_nothing_into_the_folder(trained, shipping, tmp_path):
    run, concept = trained
    assert main(["ship", str(run), str(shipping / concept)]) == 0
    before = _digest(shipping / concept)
    out = tmp_path / "shipped-report.json"
    assert main(["eval", "--shipped", toys.TOY_TASK, "--concept", concept, "--contexts", "5", "--eval-seed", "7",
                 "--out", str(out)]) == 0
    assert main(["eval", str(run), "--contexts", "5", "--seed", "7"]) == 0
    assert _digest(shipping / concept) == before
    shipped, direct = json.loads(out.read_text()), json.loads((run / "report.json").read_text())
    assert shipped["blocks"] == direct["blocks"]
    assert shipped["meta"]["contexts"] == 5 and shipped["meta"]["seed"] == 7
    assert out.with_suffix(".md").read_text().startswith("| task:")


@pytest.mark.parametrize("argv, expected", [
    (["eval"], "give a run directory or --shipped TASK"),
    (["eval", "RUN", "--shipped", toys.TOY_TASK], "give a run directory or --shipped TASK"),
    (["eval", "RUN", "--concept", "ce"], "--concept, --out and --force go with --shipped"),
    (["eval", "--shipped", toys.TOY_TASK, "--concept", "ce"], "has no shipped generator for concept ce"),
    (["eval", "--shipped", toys.TOY_TASK, "--plots"], "needs --out"),
    (["eval", "--shipped", "no_such_task"], "no_such_task"),
])
def test_eval_shipped_errors_are_one_line(argv, expected, shipping, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("did: error:") and expected in err[0]


def test_ship_an_unfinished_run_only_when_asked_and_evaluated_at_its_checkpoint(tmp_path, capsys):
    cfg = resolve_train_config({**TINY, "steps": 6})
    train(cfg, tmp_path / "full")
    assert main(["eval", str(tmp_path / "full")]) == 0
    state = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    state["step"] = 4  # as a run stopped at step 4 of 6 holds it
    torch.save(state, tmp_path / "full" / "checkpoint.pt")
    assert main(["ship", str(tmp_path / "full"), str(tmp_path / "out")]) == 2
    assert "--unfinished" in capsys.readouterr().err
    assert main(["ship", str(tmp_path / "full"), str(tmp_path / "out"), "--unfinished"]) == 2
    assert "another checkpoint" in capsys.readouterr().err  # the report is of step 6
    assert main(["eval", str(tmp_path / "full")]) == 0
    assert main(["ship", str(tmp_path / "full"), str(tmp_path / "out"), "--unfinished"]) == 0
    assert "4 of 6 steps" in (tmp_path / "out" / "MODEL_CARD.md").read_text()


def test_ship_refuses_unfinished_and_unevaluated_runs(tmp_path, capsys):
    cfg = resolve_train_config(TINY)
    train(cfg, tmp_path / "run")
    assert main(["ship", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    assert "run did eval" in capsys.readouterr().err
    assert main(["ship", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _shipped_generators() -> list[tuple[str, str]]:
    from did_core.plugins import registry
    from did_core.shipped import shipped_concepts

    return [(t, c) for t in registry("tasks").names() for c in shipped_concepts(t)]


def test_every_shipped_generator_loads_and_answers_as_its_report_says(tmp_path):
    """Each shipped folder fits today's code: its weights load into the task's generator (weights only) and it
    answers held-out contexts under its config; its model card states its report's exact-block result."""
    from did_core.shipped import shipped_folder

    for task, concept in _shipped_generators():
        folder = shipped_folder(task, concept)
        report = json.loads((folder / "report.json").read_text())
        out = tmp_path / f"{task}-{concept}.json"
        assert main(["eval", "--shipped", task, "--concept", concept, "--contexts", "4", "--out", str(out)]) == 0
        fresh = json.loads(out.read_text())
        exact = report["meta"]["config"]["exact_block"]
        # The shipped config resolves to itself; a field added since (e.g. concept_options) takes its default.
        stored, resolved = report["meta"]["config"], fresh["meta"]["config"]
        assert {k: resolved[k] for k in stored} == stored
        assert all(resolved[k] == TrainConfig.model_fields[k].get_default(call_default_factory=True)
                   for k in resolved.keys() - stored.keys())
        assert fresh["blocks"][exact]["contexts"] == 4 and set(fresh["blocks"][exact]) >= {"metric", "guarded"}
        card = (folder / "MODEL_CARD.md").read_text()
        assert f"{report['blocks'][exact]['metric']:.4f}" in card


def test_ship_report_gives_a_shipped_generator_a_new_report_and_keeps_its_card_notes(trained, shipping, tmp_path,
                                                                                      capsys):
    run, concept = trained
    notes = tmp_path / "notes.md"
    notes.write_text("Why it stopped where it did.\n\nA second paragraph.\n")
    dest = shipping / concept
    assert main(["ship", str(run), str(dest), "--notes", str(notes)]) == 0
    weights = _digest(dest)["checkpoint.pt"]
    out = tmp_path / "again.json"
    assert main(["eval", "--shipped", toys.TOY_TASK, "--concept", concept, "--contexts", "5", "--seed", "7",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["ship", "--report", str(out), str(dest)]) == 0
    assert capsys.readouterr().out.startswith(f"written: {dest / 'report.json'}")
    report = json.loads(out.read_text())
    assert json.loads((dest / "report.json").read_text()) == report
    card = (dest / "MODEL_CARD.md").read_text()
    assert "Why it stopped where it did.\n\nA second paragraph." in card and "| held-out | 5 contexts, seed 7" in card
    exact = report["meta"]["config"]["exact_block"]
    assert f"{report['blocks'][exact]['metric']:.4f}" in card
    assert _digest(dest)["checkpoint.pt"] == weights and (dest / "learning_curve.png").is_file()


def _edited(report: Path, tmp_path: Path, edit) -> Path:
    data = json.loads(report.read_text())
    edit(data)
    path = tmp_path / f"edited-{len(list(tmp_path.glob('edited-*')))}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("case, expected", [
    ("concept", "evaluates concept"),
    ("steps", "checkpoint of 3 steps"),
    ("blocks", "not a did eval report"),
    ("malformed", "is not valid JSON"),
    ("run", "is not a shipped folder"),
    ("notes", "--report takes one folder"),
])
def test_ship_report_refusals_are_one_line_and_change_nothing(case, expected, trained, shipping, tmp_path, capsys):
    run, concept = trained
    dest = shipping / concept
    assert main(["ship", str(run), str(dest)]) == 0
    report = run / "report.json"
    argv = {
        "concept": ["--report", str(_edited(report, tmp_path, lambda d: d["meta"]["config"].update(concept="x"))),
                    str(dest)],
        "steps": ["--report", str(_edited(report, tmp_path, lambda d: d["meta"].update(trained_steps=3))), str(dest)],
        "blocks": ["--report", str(_edited(report, tmp_path, lambda d: d.update(blocks={}))), str(dest)],
        "run": ["--report", str(report), str(run)],
        "notes": ["--report", str(report), str(dest), "--notes", str(report)],
    }.get(case)
    if case == "malformed":
        bad = tmp_path / "bad.json"
        bad.write_text("{")
        argv = ["--report", str(bad), str(dest)]
    before, run_before = _digest(dest), _digest(run)
    capsys.readouterr()
    assert main(["ship", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("did: error:") and expected in err[0], err
    assert _digest(dest) == before and _digest(run) == run_before
