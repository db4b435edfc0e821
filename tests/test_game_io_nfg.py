"""Tests for reading Gambit .nfg games (payoff and outcome versions) against hand-computed payoffs."""

from __future__ import annotations

import torch
from game_io_helpers import SELTEN, SELTEN_OUTCOME_NFG, SELTEN_PAYOFF_NFG, assert_game, write

from did_core.game_io import load_game, parse_nfg


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


def test_labelled_loading_keeps_strategy_labels_and_numbers_counts(tmp_path):
    from did_core.game_io import load_labelled_game

    labelled = tmp_path / "labelled.nfg"
    labelled.write_text('NFG 1 R "g" { "Ann" "Bob" } { { "up" "down" } { "left" "mid" "right" } }\n'
                        + " ".join(["0"] * 12))
    game, labels = load_labelled_game(labelled)
    assert tuple(game.shape) == (2, 2, 3)
    assert labels.players == ("Ann", "Bob") and labels.actions == (("up", "down"), ("left", "mid", "right"))
    counted = tmp_path / "counted.nfg"
    counted.write_text('NFG 1 R "g" { "Ann" "Bob" } { 2 3 }\n' + " ".join(["0"] * 12))
    assert load_labelled_game(counted)[1].actions == (("1", "2"), ("1", "2", "3"))
