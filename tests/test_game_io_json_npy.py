"""Tests for JSON and .npy games, save_game round trips and the shipped example files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from game_io_helpers import SELTEN, SELTEN_OUTCOME_NFG, SELTEN_PAYOFF_NFG, assert_game, write

from did_core.game_io import (
    GameFormatError,
    game_from_array,
    game_from_nested,
    load_game,
    parse_nfg,
    save_game,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "games"


# ---------------------------------------------------------------------------
# JSON and npy
# ---------------------------------------------------------------------------


def test_json_load_with_metadata(tmp_path):
    obj = {
        "name": "mp",
        "players": ["a", "b"],
        "actions": [["h", "t", "x"], ["h", "t"]],
        "comment": ["ignored"],
        "payoffs": [[[1, -1], [-1, 1], [0, 0]], [[-1, 1], [1, -1], [0.5, 2]]],
    }
    path = write(tmp_path, "g.json", json.dumps(obj))
    game = load_game(path)
    assert_game(game, obj["payoffs"])
    assert game[1, 2, 1] == 2 and game[1, 2, 0] == 0.5


def test_json_round_trip(tmp_path):
    game = torch.randn(3, 2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "rt.json"
    save_game(path, game, name="random")
    loaded = load_game(path)
    assert torch.equal(loaded, game)  # repr of floats round-trips exactly
    assert json.loads(path.read_text())["name"] == "random"


def test_npy_round_trip(tmp_path):
    game = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "rt.npy"
    save_game(path, game)
    assert torch.equal(load_game(path), game)
    assert np.load(path, allow_pickle=False).shape == (2, 5, 3)


def test_nfg_round_trip(tmp_path):
    game = torch.randn(3, 2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    path = tmp_path / "rt.nfg"
    save_game(path, game, name='a "quoted" name')
    assert torch.equal(load_game(path), game)


def test_round_trip_between_formats(tmp_path):
    game = load_game(write(tmp_path, "s.nfg", SELTEN_PAYOFF_NFG))
    save_game(tmp_path / "s.json", game)
    save_game(tmp_path / "s.npy", game.numpy())
    save_game(tmp_path / "s2.json", SELTEN)  # nested lists are accepted too
    for name in ("s.json", "s.npy", "s2.json"):
        assert_game(load_game(tmp_path / name), SELTEN)


def test_npy_integer_and_float32_dtypes(tmp_path):
    np.save(tmp_path / "i.npy", np.array(SELTEN, dtype=np.int32))
    np.save(tmp_path / "f.npy", np.array(SELTEN, dtype=np.float32))
    assert_game(load_game(tmp_path / "i.npy"), SELTEN)
    assert_game(load_game(tmp_path / "f.npy"), SELTEN)


def test_npy_fortran_order(tmp_path):
    arr = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(2, 3, 2))
    np.save(tmp_path / "fo.npy", arr)
    assert_game(load_game(tmp_path / "fo.npy"), arr.tolist())


def test_save_overwrites_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "g.json"
    save_game(path, [[1.0]])
    save_game(path, [[[2.0, 3.0]], [[4.0, 5.0]]])
    assert_game(load_game(path), [[[2, 3]], [[4, 5]]])
    assert sorted(os.listdir(tmp_path)) == ["g.json"]


def test_failed_save_keeps_old_file(tmp_path):
    path = tmp_path / "g.npy"
    save_game(path, torch.ones(1, 2, dtype=torch.float64))
    with pytest.raises(GameFormatError, match="non-finite"):
        save_game(path, torch.tensor([[1.0, float("nan")]]))
    assert_game(load_game(path), [[1, 1]])
    assert sorted(os.listdir(tmp_path)) == ["g.npy"]


def test_game_from_nested_accepts_tuples_ints_and_arrays():
    nested = [((1, 2), (3, 4)), [[np.int64(5), 6], (7, np.float32(8.5))]]
    expected = [[[1, 2], [3, 4]], [[5, 6], [7, 8.5]]]
    assert_game(game_from_nested(nested, "inline"), expected)
    assert_game(game_from_nested([[1, 2, 3]], "one player"), [[1, 2, 3]])
    assert_game(game_from_nested(np.array(expected), "array"), expected)
    assert_game(game_from_array(torch.tensor(expected, dtype=torch.float32), "tensor"), expected)


# ---------------------------------------------------------------------------
# Example files
# ---------------------------------------------------------------------------

EXAMPLE_TRUTH = {
    # Chicken, actions (swerve, straight)
    "chicken.json": [[[6, 2], [7, 0]], [[6, 7], [2, 0]]],
    # Prisoner's dilemma, actions (cooperate, defect)
    "prisoners_dilemma.nfg": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]],
    # Battle of the sexes, actions (opera, football)
    "battle_of_sexes_outcome.nfg": [[[3, 0], [0, 2]], [[2, 0], [0, 3]]],
    # Majority game: payoff 1 when the player's choice equals the majority
    "three_player.json": [
        [[[1, 1], [1, 0]], [[0, 1], [1, 1]]],
        [[[1, 1], [0, 1]], [[1, 0], [1, 1]]],
        [[[1, 0], [1, 1]], [[1, 1], [0, 1]]],
    ],
    "non_square.npy": SELTEN,
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_TRUTH))
def test_example_files(name):
    assert_game(load_game(EXAMPLES / name), EXAMPLE_TRUTH[name])


def test_three_player_example_is_the_majority_game():
    game = load_game(EXAMPLES / "three_player.json")
    for a in np.ndindex(2, 2, 2):
        majority = int(sum(a) >= 2)
        for p in range(3):
            assert game[(p, *a)].item() == float(a[p] == majority)


def test_examples_match_classic_games():
    from did_core.games import classic_game

    pairs = {
        "chicken.json": "chicken",
        "prisoners_dilemma.nfg": "prisoners_dilemma",
        "battle_of_sexes_outcome.nfg": "battle_of_sexes",
        "three_player.json": "three_player_majority",
    }
    for file, name in pairs.items():
        assert torch.equal(load_game(EXAMPLES / file), classic_game(name)), file


def test_outcome_example_uses_outcome_version_and_null_outcome():
    text = (EXAMPLES / "battle_of_sexes_outcome.nfg").read_text()
    body = text.rsplit("}", 1)[1].split()
    assert body == ["1", "0", "0", "2"]


def test_non_square_example_matches_gambit_sample(tmp_path):
    assert torch.equal(load_game(EXAMPLES / "non_square.npy"), parse_nfg(SELTEN_OUTCOME_NFG))
