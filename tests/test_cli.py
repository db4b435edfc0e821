"""The ``did`` command line: plugins, solve on every file format, malformed input."""

import json
from pathlib import Path

import numpy as np
import pytest

from did_core.cli import main
from did_core.plugins import exact_block_for, registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "games"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plugins_lists_blocks_and_providers(capsys):
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    lines = out.splitlines()
    for kind in ("blocks", "concepts", "generators", "tasks"):
        assert registry(kind).names(), kind  # the toys and the core's own plugins at least
        for entry in registry(kind):
            assert any(entry.name in line and f"from {entry.provider}" in line for line in lines), entry
    assert "toy_exact" in out and "did-core-test-toys" in out and "did-core" in out


@pytest.mark.parametrize("name", ["chicken.json", "prisoners_dilemma.nfg", "battle_of_sexes_outcome.nfg",
                                  "three_player.json", "non_square.npy"])
@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_solve_json_matches_reference(capsys, name, concept):
    """``did solve`` with the default (preferred exact) block against the independent Clarabel reference."""
    pytest.importorskip("cvxpy", reason="reference_solve needs cvxpy (pip install 'did-core[testing]')")
    from did_core.game_io import load_game
    from did_core.testing import reference_solve

    assert registry("blocks").get(exact_block_for(concept)).value.capabilities.exact
    code, out, _ = run(capsys, "solve", str(EXAMPLES / name), "--concept", concept, "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) >= {"joint", "gap", "violation", "entropy", "eps"}
    ref = reference_solve(load_game(EXAMPLES / name).numpy(), concept, 0.05)
    assert np.abs(np.array(report["joint"]) - ref).max() < 1e-4
    assert report["violation"] <= 1e-6


def test_solve_absolute_eps_and_text_output(capsys):
    code, out, _ = run(capsys, "solve", str(EXAMPLES / "chicken.json"), "--eps", "0.5", "--absolute")
    assert code == 0 and "gap:" in out and "violation:" in out and "entropy:" in out


@pytest.mark.parametrize(
    "content, suffix, args, message",
    [
        ('{"payoffs": [[[1, 2], [3]], [[1, 2], [3, 4]]]}', ".json", [], "ragged"),
        ('{"payoffs": [[[1, NaN], [3, 4]], [[1, 2], [3, 4]]]}', ".json", [], "NaN"),
        ('{"payoffs": [[1, 2], [3, 4]]}', ".json", [], "nest"),
        ('{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}', ".json", ["--concept", "nash"], "unknown concept"),
        ('{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}', ".json", ["--eps", "0"], "eps"),
        ('{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}', ".json", ["--block", "nope"], "known:"),
        ("hello", ".txt", [], "supported: .json"),
    ],
)
def test_malformed_input_one_line_exit_2(capsys, tmp_path, content, suffix, args, message):
    path = tmp_path / f"game{suffix}"
    path.write_text(content)
    before = sorted(tmp_path.iterdir())
    code, out, err = run(capsys, "solve", str(path), *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("did: error:")
    assert message.lower() in err.lower()
    assert sorted(tmp_path.iterdir()) == before


def test_train_help_states_real_defaults(capsys):
    """Every flag of did train shows its real default; a None default is described, never shown as 'None'."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default None" not in text and "PydanticUndefined" not in text
    assert "default: the preferred installed exact block for the concept" in text
    assert "--steps STEPS default 300" in text


def test_solve_shows_the_files_player_and_action_names(capsys):
    """Labels come from the file (JSON players/actions, .nfg names and strategy labels), else are numbered."""
    games = Path(__file__).resolve().parents[1] / "examples" / "games"
    assert main(["solve", str(games / "battle_of_sexes_outcome.nfg")]) == 0
    out = capsys.readouterr().out
    assert "P(Row, Column)" in out and "Row \\ Column" in out and out.count("opera") == 2
    assert main(["solve", str(games / "chicken.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["players"] == ["Row", "Column"] and report["actions"] == [["swerve", "straight"]] * 2
    assert main(["solve", str(games / "non_square.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["players"] == ["player 1", "player 2"] and report["actions"] == [["1", "2", "3"], ["1", "2"]]
