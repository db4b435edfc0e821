"""The menu and ama commands end to end, through ``did``'s own entry point: train a tiny run, resume an
interrupted one exactly, evaluate runs and shipped mechanisms, design from the LP, a run and an exchange file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

import did_auctions.menu_task as menu_task
from did_core.cli import main
from did_core.plugins import registry

pytestmark = pytest.mark.skipif("exact_newton" not in registry("blocks"), reason="did-plugins-exact-cvx not installed")

TINY = ["--steps", "12", "--types", "64", "--options", "3", "--width", "8", "--samples", "2000"]
INSTANCE = {"items": 2, "valuation": "additive", "distribution": {"low": [0, 0], "high": [1, 1]}}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def menu_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("menu") / "run"
    assert main(["train", "--task", "menu", *TINY, "--run-dir", str(run)]) == 0
    return run


def test_train_writes_config_checkpoint_menu_and_report(menu_run):
    config = json.loads((menu_run / "config.json").read_text())
    assert config["task"] == "menu" and config["settings"]["options"] == 3
    menu = json.loads((menu_run / "menu.json").read_text())
    assert menu["kind"] == "menu" and len(menu["options"]) == 3
    report = json.loads((menu_run / "report.json").read_text())
    assert report["menus"][0]["samples"] == 2000 and (menu_run / "report.md").is_file()
    assert list((menu_run / "tb").iterdir())  # TensorBoard events


def test_an_interrupted_run_resumes_exactly(menu_run, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_step = menu_task.menu_step

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: honoured at the step boundary, with a checkpoint
        return real_step(*args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(menu_task, "menu_step", interrupting)
    assert main(["train", "--task", "menu", *TINY, "--run-dir", str(run)]) == 130
    monkeypatch.setattr(menu_task, "menu_step", real_step)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 5
    assert main(["train", "--resume", str(run), "--samples", "2000"]) == 0
    for name, tensor in _weights(menu_run).items():
        assert torch.equal(tensor, _weights(run)[name]), name


def test_eval_of_a_run_compares_with_the_lp(menu_run, capsys):
    assert main(["eval", str(menu_run), "--samples", "1000", "--points", "4"]) == 0
    entry = json.loads((menu_run / "report.json").read_text())["menus"][0]
    assert entry["points"] == 4 and entry["menu_on_grid"] <= entry["lp"] + 1e-9
    assert "menu / LP" in capsys.readouterr().out


def test_design_from_the_lp_and_from_a_run(menu_run, tmp_path, capsys):
    instance = tmp_path / "instance.json"
    instance.write_text(json.dumps(INSTANCE))
    out = tmp_path / "lp_menu.json"
    assert main(["design", "menu", str(instance), "--lp", "--points", "4", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["kind"] == "menu"
    assert main(["design", "menu", str(instance), "--run", str(menu_run)]) == 0
    assert main(["design", "ama", str(out), "--samples", "1000"]) == 0
    assert "expected revenue" in capsys.readouterr().out


def test_ama_train_eval_and_design(tmp_path, capsys):
    run = tmp_path / "ama"
    assert main(["train", "--task", "ama", "--steps", "5", "--profiles", "64", "--lotteries", "2",
                 "--samples", "1000", "--run-dir", str(run)]) == 0
    assert main(["eval", str(run), "--samples", "1000"]) == 0
    assert main(["design", "ama", str(run / "ama.json"), "--samples", "1000"]) == 0
    assert "weights" in capsys.readouterr().out


def test_eval_shipped_reads_every_shipped_file(capsys):
    assert main(["eval", "--shipped", "menu", "--samples", "1000"]) == 0
    assert main(["eval", "--shipped", "ama", "--samples", "1000"]) == 0
