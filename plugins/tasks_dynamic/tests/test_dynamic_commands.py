"""did train --task dynamic, did eval (a run, --shipped dynamic) and did design dynamic, end to end on tiny cells;
a resumed run ends exactly where an uninterrupted one does; every shipped mechanism is re-evaluated by the
plain-Python reference on profiles of its own."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from did_core.affine_maximizer import one_round_mdp
from did_core.cli import main
from did_core.plugins import get_policy_block
from did_dynamic import training
from did_dynamic.commands import SHIPPED
from did_dynamic.mechanism_file import read_mechanism
from did_dynamic.settings import CELLS
from did_dynamic.zeroth_order import ZerothOrder

import dynamic_reference as reference

TINY = ["--task", "dynamic", "--setting", "sales-sym", "--n", "2", "--m", "2", "--steps", "8", "--batch", "16",
        "--starts", "2", "--validate-every", "4", "--validation-profiles", "500", "--eval-profiles", "1000"]


def test_train_writes_a_mechanism_file_and_eval_reads_it(tmp_path, capsys):
    assert main(["train", *TINY, "--run-dir", str(tmp_path / "run")]) == 0
    shipped = read_mechanism(tmp_path / "run" / "mechanism.json")
    assert shipped.setting.key == "sales-sym_n2_m2" and shipped.samples == 1000
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "dynamic" and config["train"]["steps"] == 8
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--profiles", "2000", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cell"] == "sales-sym_n2_m2" and row["profiles"] == 2000 and abs(row["vcg"]) < 1e-9


def test_an_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    assert main(["train", *TINY, "--run-dir", str(tmp_path / "whole")]) == 0
    real = training.step_function

    def interrupting(*args, **kwargs):
        step = real(*args, **kwargs)
        calls = {"n": 0}

        def counted(*step_args):
            calls["n"] += 1
            if calls["n"] == 5:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: honoured at the step boundary, with a checkpoint
            return step(*step_args)

        return counted

    monkeypatch.setattr(training, "step_function", interrupting)
    assert main(["train", *TINY, "--run-dir", str(tmp_path / "split")]) == 130
    monkeypatch.setattr(training, "step_function", real)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["step"] == 5
    assert main(["train", "--resume", str(tmp_path / "split")]) == 0
    whole = json.loads((tmp_path / "whole" / "mechanism.json").read_text())
    assert whole == json.loads((tmp_path / "split" / "mechanism.json").read_text())
    assert list((tmp_path / "split" / "tb").iterdir())  # TensorBoard events


def test_design_writes_the_mechanism_for_a_type_distribution(tmp_path, capsys):
    types = tmp_path / "types.json"
    types.write_text(json.dumps({"setting": "sales-asym", "n": 2, "m": 2, "upper": [1.0, 0.25]}))
    out = tmp_path / "designed.json"
    assert main(["design", "dynamic", str(types), "--steps", "6", "--starts", "2", "--profiles", "2000",
                 "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) and printed["samples"] == 2000
    assert read_mechanism(out).setting.key == "sales-asym_n2_m2"


def _shipped_cells() -> list[Path]:
    return sorted(SHIPPED.glob("*.json"))


def test_every_published_tree_cell_is_shipped():
    names = {p.stem for p in _shipped_cells()}
    expected = {f"{s}_n{n}_m{m}" for s, cells in CELLS.items() if s != "gridworld" for n, m in cells}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", _shipped_cells(), ids=lambda p: p.stem)
def test_shipped_mechanism_holds_up_under_the_reference(path):
    """The reference reads the JSON alone and simulates 300 fresh profiles of the cell's distribution; their mean
    is within five standard errors of the declared objective (measured on 10^5 profiles)."""
    shipped = read_mechanism(path)
    if shipped.setting.family == "gridworld":
        pytest.skip("the reference implements the tree settings")
    data = reference.load(path)
    types = shipped.setting.sample_types(300, torch.Generator().manual_seed(12345))
    values = torch.tensor([reference.outcome(data, t.tolist()) for t in types], dtype=torch.float64)
    stderr = float(values.std()) / len(values) ** 0.5
    assert abs(float(values.mean()) - shipped.objective) < 5 * stderr + 1e-6


@pytest.mark.parametrize("method", [["--method", "zeroth-order", "--perturbations", "2"],
                                    ["--method", "sobol", "--candidates", "4"]])
def test_the_published_baselines_train_too(tmp_path, method):
    assert main(["train", *TINY, *method, "--run-dir", str(tmp_path / "run")]) == 0
    assert read_mechanism(tmp_path / "run" / "mechanism.json").samples == 1000


def test_the_zeroth_order_estimate_is_the_gradient_of_the_gaussian_smoothed_choice():
    """Stein's lemma: E[(x(R + sigma U) - x(R)) U] / sigma is the gradient of E[x(R + sigma U)]; for a choice
    between two actions that is the normal density of the value gap at scale sigma * sqrt(2)."""
    torch.manual_seed(0)
    block = ZerothOrder(get_policy_block("backward-induction"), perturbations=20_000, sigma=0.01)
    rewards = torch.tensor([[[0.0, 0.005]]], dtype=torch.float64, requires_grad=True)
    occupancy = block(one_round_mdp(2), rewards, 0.0).occupancy
    (grad,) = torch.autograd.grad(occupancy[0, 0, 1], rewards)
    scale = 0.01 * math.sqrt(2.0)
    expected = math.exp(-0.5 * (0.005 / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
    assert float(grad[0, 0, 1]) == pytest.approx(expected, rel=0.1)
    assert float(grad[0, 0, 0]) == pytest.approx(-expected, rel=0.1)
