"""Tests that every malformed game file or invalid game raises a one-line GameFormatError."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from game_io_helpers import write

from did_core.game_io import GameFormatError, game_from_nested, load_game, save_game


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
