"""``did design`` on the two worked examples (examples/commitment_game2.json, examples/matrix_design_mt.json),
malformed instance files, and the ``did stackelberg`` report.

Tolerances (absolute): eps 0.003 for game 2 (the target is within 1% of the best value against a
max-entropy eps-best-responding follower, 27.1536, found by the independent 1-D search of
did_stackelberg.reference); eps 0.01 for the Monderer-Tennenholtz game."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from did_core.cli import main
from did_stackelberg.design_commitment import load_commitment
from did_stackelberg.design_matrix import load_matrix_design
from did_stackelberg.instances import InstanceError
from did_stackelberg.plugin import COMMITMENT, MATRIX_DESIGN
from did_stackelberg.reference import edge_search

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
GAME2, MT = EXAMPLES / "commitment_game2.json", EXAMPLES / "matrix_design_mt.json"


def _design(capsys, *argv) -> tuple[int, str, str]:
    code = main(["design", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_examples_load():
    context = load_commitment(GAME2)
    assert context.players == ["leader", "follower"] and context.actions[0] == ["A", "B", "C"]
    assert context["leader"].shape == (1, 3, 3) and context["followers"].shape == (1, 1, 3, 3)
    assert float(context["sse"][0]) == pytest.approx(27.5)
    mt = load_matrix_design(MT)
    assert mt["games"][0, :, 0, 1].tolist() == [6.0, 4.0] and mt["goal"][0].tolist() == [[0, 1], [1, 0]]
    assert set(COMMITMENT.instances.load(GAME2)) == set(context)
    assert set(MATRIX_DESIGN.instances.load(MT)) == set(mt)


def test_game2_per_instance_commitment_is_within_one_percent_of_the_eps_peak(capsys):
    eps = 0.003
    context = load_commitment(GAME2)
    _, peak = edge_search(context["leader"][0], context["followers"][0, 0], 0, 1, eps, points=501, rounds=3)
    assert peak == pytest.approx(27.1536, abs=1e-3)
    code, out, err = _design(capsys, "commitment", GAME2, "--eps", eps, "--absolute", "--block", "exact_newton",
                             "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["strong_stackelberg_value"] == pytest.approx(27.5)
    exact = report["blocks"]["exact_newton"]
    assert exact["value_without"] == pytest.approx(16.64, abs=0.01)  # the uniform commitment
    assert peak * 0.99 <= exact["value_with"] <= peak + 1e-6
    x = report["intervention"]
    assert abs(sum(x) - 1) < 1e-9 and x[2] < 0.01


def test_game2_text_report(capsys):
    code, out, err = _design(capsys, "commitment", GAME2, "--eps", 0.03, "--absolute", "--block", "exact_newton",
                             "--steps", 5)
    assert code == 0, err
    for text in ("commitment instance:", "leader commits to: A ", "strong Stackelberg value (multiple LPs, exact "
                 "best responses): 27.5000", "committing to A 0.2500  B 0.7500  C 0.0000; follower plays A",
                 "equilibrium, uniform commitment:", "follower  P", "leader's utility: 16.6"):
        assert text in out, text


def test_mt_per_instance_payments_reach_the_target_almost_free(capsys):
    code, out, err = _design(capsys, "matrix_design", MT, "--eps", 0.01, "--absolute", "--block", "exact_newton",
                             "--json")
    assert code == 0, err
    report = json.loads(out)
    sigma = torch.tensor(report["blocks"]["exact_newton"]["equilibrium_with"], dtype=torch.float64)
    x = torch.tensor(report["intervention"], dtype=torch.float64)
    different = float(sigma[0, 1] + sigma[1, 0])
    paid = float((sigma * x.sum(dim=0)).sum())
    assert different >= 0.95 and paid <= 0.05
    assert (x >= 0).all() and float(x.max()) >= 1.0  # something is promised, off the path
    before = torch.tensor(report["blocks"]["exact_newton"]["equilibrium_without"], dtype=torch.float64)
    assert float(before[0, 1] + before[1, 0]) < 0.7


def test_mt_text_report(capsys):
    code, out, err = _design(capsys, "matrix_design", MT, "--eps", 0.01, "--absolute", "--block", "exact_newton",
                             "--steps", 3)
    assert code == 0, err
    for text in ("promised payments (per-instance gradient ascent", "to row", "to column", "A, B",
                 "P(target):", "goal - lam * payments made:"):
        assert text in out, text


@pytest.mark.parametrize("task, edit, message", [
    ("commitment", {"leader_payoffs": [[1, 2], [3, 4]]}, "'leader_payoffs' must be a list of 3 entries"),
    ("commitment", {"followers": ["a", "a"]}, "'followers' has duplicate names"),
    ("commitment", {"colour": 1}, "unknown field(s) 'colour'"),
    ("matrix_design", {"goal": "chaos"}, "'goal' must be \"target\" or \"welfare\""),
    ("matrix_design", {"target": [["A", "C"]]}, "'target[0]' must name one action of each player"),
    ("matrix_design", {"payoffs": [[[3, 6], [4, "x"]], [[3, 4], [6, 2]]]}, "'payoffs[0][1][1]' must be a finite"),
])
def test_malformed_files_are_one_line_errors(tmp_path, capsys, task, edit, message):
    data = json.loads((GAME2 if task == "commitment" else MT).read_text())
    data.update(edit)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InstanceError, match="^" + str(path).replace(".", r"\.")):
        (COMMITMENT if task == "commitment" else MATRIX_DESIGN).instances.load(path)
    code, out, err = _design(capsys, task, path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_stackelberg_report_without_a_run(capsys):
    code = main(["stackelberg", "--contexts", "8", "--eps", "0.03", "--absolute", "--optimise-steps", "20", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    # an eps-best-responding follower may, rarely, serve the leader a little better than an exact one
    assert report["contexts"] == 8 and 0 < report["uniform"]["ratio"] < report["optimised"]["ratio"] <= 1.05
    per = report["per_context"]
    assert len(per["sse"]) == len(per["uniform"]) == len(per["optimised"]) == 8
    assert sum(v / s for v, s in zip(per["optimised"], per["sse"])) / 8 == pytest.approx(report["optimised"]["ratio"])


def test_a_trained_run_through_design_and_the_report(tmp_path, capsys):
    """A (two-step) trained commitment run: did design reads its generator, did stackelberg scores it."""
    run = tmp_path / "run"
    code = main(["train", "--task", "commitment", "--steps", "2", "--eval-contexts", "4", "--eps", "0.03",
                 "--absolute-eps", "--generator-options", '{"width": 8, "depth": 1}', "--run-dir", str(run)])
    capsys.readouterr()
    assert code == 0
    code, out, err = _design(capsys, "commitment", GAME2, "--run-dir", run, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["source"].startswith("generator of") and report["eps"] == 0.03 and not report["relative_eps"]
    assert abs(sum(report["intervention"]) - 1) < 1e-6
    code = main(["stackelberg", str(run), "--contexts", "8", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    scored = json.loads(out)
    assert scored["eps"] == 0.03 and {"uniform", "generator"} <= set(scored)
    assert len(scored["per_context"]["generator"]) == 8
    assert main(["stackelberg", str(tmp_path / "nothing")]) == 2


def test_stackelberg_refuses_more_held_out_games_than_fit_before_drawing_them(capsys, monkeypatch):
    """``--contexts`` is bounded by memory and time, estimated from a few games, before the games are drawn."""
    import did_stackelberg.report as report

    assert main(["stackelberg", "--contexts", "100000000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GiB" in err and "lower --contexts" in err
    monkeypatch.setattr(report, "MAX_EVALUATION_SECONDS", 1e-6)  # any real count is now over the time bound
    assert main(["stackelberg", "--contexts", "1000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strong Stackelberg values would take about" in err
