"""``did design inverse TARGET.json``: per-instance games on a 2x2 target, the printed equilibrium, malformed files.

Truth: ``KL(target || uniform)`` and ``KL(target || sigma)`` recomputed here with numpy; the
equilibrium of the printed game recomputed with the exact block on the game as printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from did_core.cli import main
from did_core.equilibria import Epsilon
from did_core.instance_files import InstanceError
from did_core.plugins import create, get_concept, registry
from did_core.testing import assert_design_refuses
from did_inverse.design import InverseInstances, load_target
from did_inverse.plugin import INVERSE

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "inverse_target.json"
TARGET = [[0.5, 0.1], [0.1, 0.3]]


def _run(capsys, *argv):
    code = main(["design", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _kl(target: np.ndarray, sigma: np.ndarray) -> float:
    t = target.reshape(-1)
    s = sigma.reshape(-1)
    keep = t > 0
    return float(np.sum(t[keep] * np.log(t[keep] / s[keep])))


@pytest.fixture
def exact():
    if "exact_newton" not in registry("blocks"):
        pytest.skip("did-plugins-exact-cvx is not installed")
    return create("blocks", "exact_newton")


@pytest.fixture
def target_file(tmp_path):
    path = tmp_path / "target.json"
    path.write_text(json.dumps({"target": TARGET, "players": [{"name": "Row", "actions": ["up", "down"]},
                                                             {"name": "Col", "actions": ["left", "right"]}]}))
    return path


def test_task_reads_instances_and_the_example_loads():
    assert isinstance(INVERSE.instances, InverseInstances)
    context = load_target(EXAMPLE)
    assert set(context) == {"target", "noise", "mask"}
    assert context["target"].shape == context["noise"].shape == (1, 4, 4)  # padded to the larger player's 4
    assert context["mask"].tolist() == [[[True] * 3 + [False], [True] * 4]]
    assert context["target"].dtype == torch.get_default_dtype()
    assert float(context["target"].sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(context["target"][0, 3].abs().sum()) == 0 and float(context["noise"].abs().sum()) == 0
    assert context.players == ["Row", "Column"] and context.actions[1] == ["go", "wait", "turn", "stop"]


def test_per_instance_game_beats_the_uniform_game_and_prints_its_exact_equilibrium(target_file, exact, capsys):
    code, out, err = _run(capsys, "inverse", target_file, "--optimise", "--block", "exact_newton", "--steps", 30,
                          "--json")
    assert code == 0, err
    report = json.loads(out)
    target = np.array(TARGET)
    uniform = _kl(target, np.full((2, 2), 0.25))
    r = report["blocks"]["exact_newton"]
    assert r["value_without"] == pytest.approx(uniform, abs=1e-6)
    assert r["value_with"] < 0.5 * uniform  # clearly below the uniform game's KL
    assert report["guarded"] is False and np.allclose(report["target"], TARGET, atol=1e-6)
    assert (report["players"], report["actions"]) == (["Row", "Col"], [["up", "down"], ["left", "right"]])

    # The game as reported, solved again by the exact block: the reported equilibrium and KL.
    game = torch.tensor(report["intervention"], dtype=torch.float64).unsqueeze(0)
    assert game.shape == (1, 2, 2, 2)
    eq = exact(game, torch.ones(1, 2, 2, dtype=torch.bool), concept=get_concept("cce"), eps=Epsilon(0.05, relative=True))
    sigma = eq.sigma[0].numpy()
    assert np.allclose(np.array(r["equilibrium_with"]), sigma, atol=1e-8)
    assert r["value_with"] == pytest.approx(_kl(target, sigma), abs=1e-8)

    code, out, err = _run(capsys, "inverse", target_file, "--optimise", "--block", "exact_newton", "--steps", 30)
    assert code == 0, err
    printed = out.split("block exact_newton (cce, relative eps 0.05):")[1].split("equilibrium, with the game:")[1]
    rows = [line.split() for line in printed.strip().splitlines()[1:3]]
    assert [row[0] for row in rows] == ["up", "down"]
    assert np.allclose(np.array([[float(v) for v in row[1:]] for row in rows]), sigma, atol=1e-6)
    for text in ("target joint:", "Row \\ Col", "payoffs of Row:", "payoffs of Col:",
                 f"KL(target || sigma): {uniform:.4f} (constant game) -> {r['value_with']:.4f} (with the game)"):
        assert text in out, text


BAD = {
    "not_json.json": "{ not json",
    "list.json": "[[0.5, 0.5], [0.0, 0.0]]",
    "missing.json": {"players": []},
    "unknown.json": {"target": TARGET, "colour": "red"},
    "ragged.json": {"target": [[0.5, 0.1], [0.4]]},
    "flat.json": {"target": 0.5},
    "axes.json": {"target": [[[[[0.5, 0.5]] * 2] * 2] * 2] * 2},
    "negative.json": {"target": [[0.5, -0.1], [0.3, 0.3]]},
    "nan.json": '{"target": [[0.5, NaN], [0.3, 0.3]]}',
    "inf.json": '{"target": [[0.5, 1e999], [0.3, 0.3]]}',
    "text.json": {"target": [[0.5, "x"], [0.3, 0.3]]},
    "zero.json": {"target": [[0, 0], [0, 0]]},
    "one_action.json": {"target": [[0.5], [0.5]]},
    "empty.json": {"target": []},
    "players_count.json": {"target": TARGET, "players": [{"name": "A", "actions": ["x", "y"]}]},
    "players_actions.json": {"target": TARGET, "players": [{"name": "A", "actions": ["x", "y"]},
                                                           {"name": "B", "actions": ["x"]}]},
    "players_field.json": {"target": TARGET, "players": [{"name": "A", "actions": ["x", "y"], "age": 3},
                                                         {"name": "B", "actions": ["x", "y"]}]},
    "players_same.json": {"target": TARGET, "players": [{"name": "A", "actions": ["x", "y"]},
                                                        {"name": "A", "actions": ["x", "y"]}]},
    "noise_shape.json": {"target": TARGET, "noise": [0, 0]},
    "noise_nan.json": '{"target": [[0.5, 0.1], [0.1, 0.3]], "noise": [[0, 0], [0, NaN]]}',
    "a_directory": None,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_files_are_one_line_naming_the_file(name, tmp_path, capsys):
    path = tmp_path / name
    assert_design_refuses("inverse", path, BAD[name], capsys)
    with pytest.raises(InstanceError):
        load_target(path)
