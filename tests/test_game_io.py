"""Tests for did_core.game_io against hand-computed payoffs."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from did_core.game_io import (
    GameFormatError,
    game_from_array,
    game_from_nested,
    load_game,
    parse_nfg,
    save_game,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "games"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_game(game: torch.Tensor, expected) -> None:
    assert game.dtype == torch.float64
    assert game.device.type == "cpu"
    torch.testing.assert_close(game, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=0)


# Selten (IJGT 1975) Figure 2 normal form: the sample game of the Gambit docs.
# Player 1 has 3 strategies, player 2 has 2. Contingencies listed with player 1
# fastest: (1,1)->1,1  (2,1)->0,2  (3,1)->0,2  (1,2)->1,1  (2,2)->0,3  (3,2)->2,0.
SELTEN = [
    [[1, 1], [0, 0], [0, 2]],  # G[0][a1][a2]
    [[1, 1], [2, 3], [2, 0]],  # G[1][a1][a2]
]

SELTEN_PAYOFF_NFG = """NFG 1 R "Selten (IJGT, 75), Figure 2, normal form"
{ "Player 1" "Player 2" } { 3 2 }

1 1 0 2 0 2 1 1 0 3 2 0
"""

SELTEN_OUTCOME_NFG = """NFG 1 R "Selten (IJGT, 75), Figure 2, normal form" { "Player 1" "Player 2" }

{
{ "1" "2" "3" }
{ "1" "2" }
}

{
{ "" 1, 1 }
{ "" 0, 2 }
{ "" 0, 2 }
{ "" 1, 1 }
{ "" 0, 3 }
{ "" 2, 0 }
}
1 2 3 4 5 6
"""


# ---------------------------------------------------------------------------
# .nfg, payoff version
# ---------------------------------------------------------------------------


def test_nfg_payoff_version_non_square(tmp_path):
    game = load_game(write(tmp_path, "selten.nfg", SELTEN_PAYOFF_NFG))
    assert game.shape == (2, 3, 2)
    assert_game(game, SELTEN)
    # spot checks straight from the contingency list
    assert game[0, 2, 1] == 2 and game[1, 2, 1] == 0  # (3,2) -> 2, 0
    assert game[1, 1, 1] == 3  # (2,2) -> 0, 3


def test_nfg_payoff_version_three_players_rationals(tmp_path):
    # 3 players with 2 actions each. Payoffs listed with player 1 fastest, then 2, then 3.
    text = """NFG 1 R "three" { "A" "B" "C" } { 2 2 2 } "a comment"
    1 2 3        -1 -2 -3
    1/2 3/2 -5/4   0.5 .25 1e1
    7 8 9        10 11 12
    +13 14 15    16 17 18.5
    """
    game = load_game(write(tmp_path, "three.nfg", text))
    assert game.shape == (3, 2, 2, 2)
    # (a1, a2, a3) -> payoffs, written out by hand from the listing above
    table = {
        (0, 0, 0): (1, 2, 3),
        (1, 0, 0): (-1, -2, -3),
        (0, 1, 0): (0.5, 1.5, -1.25),
        (1, 1, 0): (0.5, 0.25, 10),
        (0, 0, 1): (7, 8, 9),
        (1, 0, 1): (10, 11, 12),
        (0, 1, 1): (13, 14, 15),
        (1, 1, 1): (16, 17, 18.5),
    }
    for (a1, a2, a3), payoffs in table.items():
        for p in range(3):
            assert game[p, a1, a2, a3].item() == payoffs[p], (p, a1, a2, a3)


def test_nfg_payoff_version_three_players_non_square(tmp_path):
    # A 2x3x4 game whose payoff encodes (player, a1, a2, a3) as digits.
    sizes = (2, 3, 4)
    chunks = []
    for a3 in range(sizes[2]):
        for a2 in range(sizes[1]):
            for a1 in range(sizes[0]):  # player 1 varies fastest
                chunks.append(" ".join(str(1000 * p + 100 * a1 + 10 * a2 + a3) for p in range(3)))
    text = 'NFG 1 R "digits" { "P1" "P2" "P3" } { 2 3 4 }\n' + "\n".join(chunks) + "\n"
    game = load_game(write(tmp_path, "digits.nfg", text))
    assert game.shape == (3, 2, 3, 4)
    for p in range(3):
        for a1 in range(2):
            for a2 in range(3):
                for a3 in range(4):
                    assert game[p, a1, a2, a3].item() == 1000 * p + 100 * a1 + 10 * a2 + a3


def test_nfg_payoff_version_with_labels_and_commas(tmp_path):
    # Strategy labels in the header with a payoff body is legal; commas optional.
    text = 'NFG 1 R "x" { "P1" "P2" } { { "a" "b" } { "c" } }\n1, 2, 3 4\n'
    game = load_game(write(tmp_path, "x.nfg", text))
    assert_game(game, [[[1], [3]], [[2], [4]]])


def test_nfg_quoted_strings_with_escapes_spaces_and_braces(tmp_path):
    text = (
        'NFG 1 R "A \\"quoted\\" title { with } braces" '
        '{ "Player \\"one\\"" "Player {two}" } { { "x \\" y" "}" } { "{" } }\n'
        '"comment with \\"quotes\\" and a brace }"\n'
        "5 6 7 8\n"
    )
    game = load_game(write(tmp_path, "quotes.nfg", text))
    assert_game(game, [[[5], [7]], [[6], [8]]])


def test_nfg_single_player_and_single_action(tmp_path):
    game = load_game(write(tmp_path, "one.nfg", 'NFG 1 D "solo" { "P" } { 3 } 4 5 6'))
    assert_game(game, [[4, 5, 6]])


def test_nfg_suffix_is_case_insensitive(tmp_path):
    game = load_game(write(tmp_path, "upper.NFG", SELTEN_PAYOFF_NFG))
    assert_game(game, SELTEN)


# ---------------------------------------------------------------------------
# .nfg, outcome version
# ---------------------------------------------------------------------------


def test_nfg_outcome_version_matches_payoff_version(tmp_path):
    game = load_game(write(tmp_path, "selten_out.nfg", SELTEN_OUTCOME_NFG))
    assert_game(game, SELTEN)


def test_nfg_outcome_version_null_outcome_rationals_reuse(tmp_path):
    # 3x2: outcomes reused, outcome 0 = all zeros, rationals, commas optional.
    text = """NFG 1 R "outcomes" { "Row" "Col" }
{ { "T" "M" "B" } { "L" "R" } }
"comment"
{
{ "win \\"row\\"" 3/2, -1/2 }
{ "win col" -1 2 }
{ "decimal" 0.75 , 1e-1 }
}
1 0 2
3 1 0
"""
    game = load_game(write(tmp_path, "out.nfg", text))
    # contingencies: (T,L)=1 (M,L)=0 (B,L)=2 (T,R)=3 (M,R)=1 (B,R)=0
    expected0 = [[1.5, 0.75], [0.0, 1.5], [-1.0, 0.0]]
    expected1 = [[-0.5, 0.1], [0.0, -0.5], [2.0, 0.0]]
    assert_game(game, [expected0, expected1])


def test_nfg_outcome_version_three_players(tmp_path):
    text = """NFG 1 R "3p" { "1" "2" "3" } { { "a" "b" } { "c" "d" } { "e" "f" } }
{ { "o1" 1 2 3 } { "o2" 4, 5, 6 } }
1 2 0 0 0 0 2 1
"""
    game = load_game(write(tmp_path, "3p.nfg", text))
    g = torch.zeros(3, 2, 2, 2, dtype=torch.float64)
    g[:, 0, 0, 0] = torch.tensor([1.0, 2, 3])  # contingency 1: (a, c, e) -> o1
    g[:, 1, 0, 0] = torch.tensor([4.0, 5, 6])  # contingency 2: (b, c, e) -> o2
    g[:, 0, 1, 1] = torch.tensor([4.0, 5, 6])  # contingency 7: (a, d, f) -> o2
    g[:, 1, 1, 1] = torch.tensor([1.0, 2, 3])  # contingency 8: (b, d, f) -> o1
    assert_game(game, g.tolist())


def test_nfg_outcome_version_empty_outcome_list(tmp_path):
    text = 'NFG 1 R "zeros" { "1" "2" } { { "a" "b" } { "c" } }\n{ }\n0 0\n'
    assert_game(load_game(write(tmp_path, "zeros.nfg", text)), [[[0], [0]], [[0], [0]]])


def test_parse_nfg_text_directly():
    assert_game(parse_nfg(SELTEN_PAYOFF_NFG), SELTEN)


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


# ---------------------------------------------------------------------------
# Malformed input: every problem is a one-line GameFormatError naming the file
# ---------------------------------------------------------------------------


def _npy(array, **kwargs):
    def make(path: Path) -> None:
        with open(path, "wb") as handle:
            np.save(handle, array, **kwargs)

    return make


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(path: Path) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, a=np.zeros((1, 2)))


def _directory(path: Path) -> None:
    path.mkdir()


def _js(payoffs, **extra) -> str:
    return json.dumps({"payoffs": payoffs, **extra})


NFG_HEAD = 'NFG 1 R "t" { "P1" "P2" } { 3 2 }\n'
NFG_OUT_HEAD = 'NFG 1 R "t" { "P1" "P2" } { { "a" "b" } { "c" } }\n'

MALFORMED = [
    # --- files and suffixes
    ("missing.json", None, ["file not found"]),
    ("missing.nfg", None, ["file not found"]),
    ("dir.json", _directory, ["directory"]),
    ("game.txt", "1 2 3", ["unsupported file type", ".json", ".npy", ".nfg"]),
    ("game", "1 2 3", ["unsupported file type", "no suffix"]),
    # --- JSON
    ("bad.json", '{"payoffs": [1, 2,}', ["invalid JSON", "line 1"]),
    ("latin1.json", b'{"payoffs": "\xff"}', ["invalid JSON", "UTF-8"]),
    ("empty.json", "", ["invalid JSON"]),
    ("list.json", "[[[1]]]", ["must be an object"]),
    ("nokey.json", '{"payoff": [[1]]}', ['missing "payoffs" key', "'payoff'"]),
    ("scalar.json", _js(3), ["nested list"]),
    ("nplayers0.json", _js([]), ["N = 0"]),
    ("shallow.json", _js([[1, 2], [3, 4]]), ["wrong nesting", "N = 2", "depth 2"]),
    ("deep.json", _js([[[[1]]]]), ["wrong nesting", "N = 1", "depth 4"]),
    ("axes.json", _js([[[1, 2]], [[3, 4]], [[5, 6]]]), ["wrong nesting", "N = 3"]),
    ("ragged.json", _js([[[1, 2], [3]], [[1, 2], [3, 4]]]), ["ragged", "payoffs[0][1]", "length 1"]),
    ("ragged2.json", _js([[[1, 2], [3, 4]], [[1, 2], 5]]), ["ragged", "payoffs[1][1]"]),
    ("ragged3.json", _js([[[1, [2]], [3, 4]], [[1, 2], [3, 4]]]), ["ragged", "payoffs[0][0][1]"]),
    ("ragged4.json", _js([[[1, 2], [3, 4]], [[1, 2], [3, 4]], [[1, 2]]]), ["wrong nesting"]),
    ("ragged5.json", _js([[[1, 2], [3, 4]], [[1, 2]]]), ["ragged", "payoffs[1]", "length 1"]),
    ("string.json", _js([[[1, 2], [3, 4]], [["1", "x"], [3, 4]]]), ["non-numeric", "payoffs[1][0][0]"]),
    ("null.json", _js([[[1, 2], [3, None]], [[1, 2], [3, 4]]]), ["non-numeric", "payoffs[0][1][1]"]),
    ("dict.json", _js([[[1, 2], [3, 4]], [[1, {}], [3, 4]]]), ["non-numeric", "payoffs[1][0][1]"]),
    ("bool.json", _js([[[1, 2], [3, 4]], [[1, 2], [True, 4]]]), ["booleans are not numbers", "payoffs[1][1][0]"]),
    ("nan.json", '{"payoffs": [[[1, NaN], [3, 4]], [[1, 2], [3, 4]]]}', ["non-finite", "payoffs[0][0][1]"]),
    ("inf.json", '{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, -Infinity]]]}', ["non-finite", "payoffs[1][1][1]"]),
    ("big.json", '{"payoffs": [[1e400, 2]]}', ["non-finite", "payoffs[0][0]"]),
    ("bigint.json", '{"payoffs": [[1' + "0" * 400 + ", 2]]}", ["out of float64 range"]),
    ("noact.json", _js([[[], []], [[], []]]), ["player 1 has no actions", "payoffs[0][0]"]),
    ("noact0.json", _js([[], []]), ["player 0 has no actions"]),
    ("players.json", _js([[[1]], [[2]]], players=["a"]), ['"players"', "N = 2"]),
    ("players2.json", _js([[[1]], [[2]]], players="ab"), ['"players"', "list of strings"]),
    ("actions.json", _js([[[1, 2]], [[3, 4]]], actions=[["a"], ["b"]]), ['"actions"[1]', "2 actions"]),
    ("actions2.json", _js([[[1, 2]], [[3, 4]]], actions=[["a"]]), ['"actions"', "N = 2"]),
    ("name.json", _js([[1]], name=5), ['"name"', "string"]),
    # --- npy
    ("rank2.npy", _npy(np.zeros((2, 3))), ["wrong rank 2", "N = 2"]),
    ("rank1.npy", _npy(np.zeros(3)), ["wrong rank 1"]),
    ("rank0.npy", _npy(np.float64(1.0)), ["wrong rank 0"]),
    ("rank4.npy", _npy(np.zeros((2, 2, 2, 2))), ["wrong rank 4", "N = 2"]),
    ("n0.npy", _npy(np.zeros((0, 3))), ["N = 0"]),
    ("noact.npy", _npy(np.zeros((2, 3, 0))), ["player 1 has no actions"]),
    ("str.npy", _npy(np.array([["a", "b"]])), ["non-numeric dtype"]),
    ("complex.npy", _npy(np.zeros((1, 2), dtype=complex)), ["non-numeric dtype"]),
    ("bool.npy", _npy(np.zeros((1, 2), dtype=bool)), ["boolean"]),
    ("object.npy", _npy(np.array([[1, None]], dtype=object), allow_pickle=True), ["pickle"]),
    ("nan.npy", _npy(np.array([[[1.0, np.nan]], [[1.0, 2.0]]])), ["non-finite", "[0, 0, 1]"]),
    ("inf.npy", _npy(np.array([[1.0, np.inf]])), ["non-finite", "[0, 1]"]),
    ("garbage.npy", b"this is not a numpy file at all", ["invalid .npy"]),
    ("empty.npy", b"", ["invalid .npy"]),
    ("truncated.npy", lambda path: path.write_bytes(_npy_bytes(np.zeros((2, 3, 3)))[:-10]), ["invalid .npy", "EOF"]),
    ("archive.npy", _npz, ["npz"]),
    # --- nfg header
    ("efg.nfg", 'EFG 2 R "t" { "P1" } 1', ["nfg header", "'NFG'"]),
    ("empty.nfg", "", ["nfg header", "'NFG'", "end of file"]),
    ("version.nfg", 'NFG 2 R "t" { "P1" } { 1 } 1', ["unsupported version"]),
    ("type.nfg", 'NFG 1 Q "t" { "P1" } { 1 } 1', ["'R' or 'D'"]),
    ("title.nfg", 'NFG 1 R { "P1" } { 1 } 1', ["title"]),
    ("noplayers.nfg", 'NFG 1 R "t" { } { } ', ["player list is empty", "N = 0"]),
    ("unquoted.nfg", 'NFG 1 R "t" { P1 P2 } { 1 1 } 1 2', ["quoted player name"]),
    ("count.nfg", 'NFG 1 R "t" { "P1" "P2" } { 2 } 1 2 3 4', ["strategy list gives 1 players", "2 players"]),
    ("count2.nfg", 'NFG 1 R "t" { "P1" } { { "a" } { "b" } } 1', ["strategy list gives 2 players"]),
    ("zero.nfg", 'NFG 1 R "t" { "P1" "P2" } { 2 0 } ', ["player 1", "'P2'", "no actions"]),
    ("zero2.nfg", 'NFG 1 R "t" { "P1" "P2" } { { "a" } { } } { } ', ["player 1", "no actions"]),
    ("frac.nfg", 'NFG 1 R "t" { "P1" } { 1.5 } 1', ["strategy count", "'1.5'"]),
    ("nostrat.nfg", 'NFG 1 R "t" { "P1" } 1 2', ["strategy list"]),
    # --- nfg payoff body
    ("few.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2", ["wrong count of payoffs", "expected 12", "got 11"]),
    ("many.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2 0 7", ["wrong count of payoffs", "got 13"]),
    ("nobody.nfg", NFG_HEAD, ["missing", "no payoffs or outcomes"]),
    ("word.nfg", NFG_HEAD + "1 1 0 2 0 two 1 1 0 3 2 0", ["expected a payoff", "'two'"]),
    ("text.nfg", NFG_HEAD + '1 1 0 2 0 2 1 1 0 3 2 0 "extra"', ["expected a payoff", "string"]),
    ("brace.nfg", NFG_HEAD + "1 1 0 2 0 2 { 1 1 0 3 2 0 }", ["expected a payoff", "'{'"]),
    ("num.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2 1..5", ["invalid number", "'1..5'"]),
    ("num2.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2 3/x", ["invalid number"]),
    ("zerodiv.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2 3/0", ["division by zero", "'3/0'"]),
    ("huge.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2 1e400", ["out of float64 range"]),
    # --- nfg outcome body
    ("opay.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 } { "y" 1, 2, 3 } }\n1 2', ["wrong count of payoffs", "outcome 2", "3 payoffs"]),
    ("opay2.nfg", NFG_OUT_HEAD + '{ { "x" 1 } }\n1 1', ["wrong count of payoffs", "outcome 1"]),
    ("orange.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 } { "y" 3 4 } }\n1 3', ["outcome index 3", "out of range", "2 outcomes"]),
    ("orange0.nfg", NFG_OUT_HEAD + "{ }\n0 1", ["outcome index 1", "out of range"]),
    ("oneg.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 } }\n1 -1', ["outcome index", "'-1'"]),
    ("ofrac.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 } }\n1 0.5', ["outcome index", "'0.5'"]),
    ("ofew.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 } }\n1', ["wrong count of outcome indices", "expected 2", "got 1"]),
    ("omany.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 } }\n1 1 0', ["wrong count of outcome indices", "got 3"]),
    ("oname.nfg", NFG_OUT_HEAD + "{ { 1 2 } }\n1 1", ["name of outcome 1"]),
    ("oword.nfg", NFG_OUT_HEAD + '{ { "x" 1 two } }\n1 1', ["payoff of outcome 1", "'two'"]),
    # --- nfg lexical structure
    ("open.nfg", NFG_OUT_HEAD + '{ { "x" 1 2 }\n1 1', ["unbalanced braces", "never closed"]),
    ("close.nfg", NFG_HEAD + "1 1 0 2 0 2 1 1 0 3 2 0 }", ["unbalanced braces", "unexpected '}'", "line 2"]),
    ("hdr.nfg", 'NFG 1 R "t" { "P1" "P2" { 3 2 }\n1 2', ["unbalanced braces"]),
    ("quote.nfg", 'NFG 1 R "t { "P1" } { 1 } 1', ["unterminated quoted string", "line 1"]),
    ("quote2.nfg", 'NFG 1 R "t" { "P1 \\" } { 1 } 1', ["unterminated quoted string"]),
]


@pytest.mark.parametrize("name,content,needles", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_files_raise_one_line_errors(tmp_path, name, content, needles):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        content(path)
    with pytest.raises(GameFormatError) as info:
        load_game(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.splitlines() == [message], message
    assert message.startswith(str(path) + ": "), message
    for needle in needles:
        assert needle in message, (needle, message)


def test_error_message_stays_one_line_with_newlines_in_the_path(tmp_path):
    path = tmp_path / "bad\nname.json"
    with pytest.raises(GameFormatError) as info:
        load_game(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "file not found" in message
    assert info.value.source == str(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "locked.json", _js([[1]]))
    path.chmod(0)
    try:
        with pytest.raises(GameFormatError, match="cannot read file"):
            load_game(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    "games,needles",
    [
        ([[1, 2], [3, 4]], ["wrong nesting"]),
        ([], ["N = 0"]),
        (np.zeros((2, 2)), ["wrong nesting", "N = 2"]),
        (torch.zeros(2, 2, 0), ["player 1 has no actions"]),
        (torch.tensor([[1.0, float("inf")]]), ["non-finite"]),
        (np.array([[True, False]]), ["boolean"]),
        ([[1, "2"]], ["non-numeric"]),
        ("payoffs", ["nested list"]),
    ],
)
def test_save_rejects_invalid_games(tmp_path, games, needles):
    path = tmp_path / "out.json"
    with pytest.raises(GameFormatError) as info:
        save_game(path, games)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_save_unsupported_suffix_and_missing_directory(tmp_path):
    with pytest.raises(GameFormatError, match=r"cannot save file type '\.csv'.*\.json"):
        save_game(tmp_path / "g.csv", [[1.0]])
    with pytest.raises(GameFormatError, match="does not exist"):
        save_game(tmp_path / "nope" / "g.json", [[1.0]])
    assert os.listdir(tmp_path) == []


def test_game_from_nested_names_its_source():
    with pytest.raises(GameFormatError, match=r"^my game: ragged lists: payoffs\[1\]"):
        game_from_nested([[[1, 2]], [[1, 2], [3, 4]]], "my game")


def test_error_class_single_argument_form_and_pickling():
    err = GameFormatError("plain problem\nsecond line")
    assert str(err) == "plain problem\\nsecond line"
    assert err.source is None
    err2 = GameFormatError("f.json", "bad thing")
    assert str(err2) == "f.json: bad thing" and err2.source == "f.json" and err2.problem == "bad thing"
    again = pickle.loads(pickle.dumps(err2))
    assert isinstance(again, GameFormatError) and str(again) == "f.json: bad thing"
