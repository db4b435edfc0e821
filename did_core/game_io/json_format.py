"""Reading ``.json`` games: ``{"payoffs": [...]}`` plus optional metadata.

The payoffs are nested ``[N][A_1]..[A_N]`` and validated by
:func:`game_from_nested`; the optional ``"name"``, ``"players"`` and
``"actions"`` keys are checked against them so a file whose labels disagree
with its payoffs is rejected, and the labels are kept for display. Other keys
are ignored. (Writing JSON is a few
lines inside :func:`save_game`.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from did_core.files import JsonRefused, clip, json_object
from did_core.game_io.errors import GameFormatError
from did_core.game_io.file_bytes import _read_bytes
from did_core.game_io.validation import game_from_nested


def read_json_object(path: Path) -> dict[str, Any]:
    """The top-level JSON object of a game file (a key given twice, invalid UTF-8 or JSON: :class:`GameFormatError`)."""
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GameFormatError(path, f"invalid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=json_object)  # a key given twice is refused, naming it
    except json.JSONDecodeError as exc:
        raise GameFormatError(path, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise GameFormatError(path, "invalid JSON: nested too deeply") from None
    except JsonRefused as exc:
        raise GameFormatError(path, str(exc)) from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise GameFormatError(path, f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise GameFormatError(
            path, f'JSON top level must be an object {{"payoffs": [...]}}, got {type(obj).__name__}'
        )
    if "payoffs" not in obj:
        keys = clip(", ".join(repr(k) for k in obj)) or "none"
        raise GameFormatError(path, f'missing "payoffs" key (keys present: {keys})')
    return obj


def _load_json(path: Path) -> tuple[Tensor, list[str] | None, list[list[str]] | None]:
    """The game and its optional ``"players"`` and ``"actions"`` labels (checked against the payoffs)."""
    obj = read_json_object(path)
    if "prior" in obj:
        raise GameFormatError(path, 'a Bayesian game (it has a "prior"): did solve reads it, as its agent-normal '
                                    'form; this command takes normal-form games')
    return game_from_json_object(obj, path)


def game_from_json_object(obj: dict[str, Any], path: Path) -> tuple[Tensor, list[str] | None, list[list[str]] | None]:
    """The normal-form game of a JSON object read by :func:`read_json_object`, and its optional labels."""
    games = game_from_nested(obj["payoffs"], str(path))
    _check_json_metadata(obj, games, path)
    return games, obj.get("players"), obj.get("actions")


def _check_json_metadata(obj: dict[str, Any], games: Tensor, path: Path) -> None:
    n_players = games.shape[0]
    sizes = list(games.shape[1:])
    if "name" in obj and not isinstance(obj["name"], str):
        raise GameFormatError(path, f'"name" must be a string, got {type(obj["name"]).__name__}')
    if "players" in obj:
        players = obj["players"]
        if not isinstance(players, list) or not all(isinstance(x, str) for x in players):
            raise GameFormatError(path, '"players" must be a list of strings')
        if len(players) != n_players:
            raise GameFormatError(
                path, f'"players" lists {len(players)} names but payoffs have N = {n_players} players'
            )
    if "actions" in obj:
        actions = obj["actions"]
        if not isinstance(actions, list) or not all(
            isinstance(row, list) and all(isinstance(x, str) for x in row) for row in actions
        ):
            raise GameFormatError(path, '"actions" must be a list of lists of strings, one list per player')
        if len(actions) != n_players:
            raise GameFormatError(
                path, f'"actions" has {len(actions)} lists but payoffs have N = {n_players} players'
            )
        for p, (row, size) in enumerate(zip(actions, sizes)):
            if len(row) != size:
                raise GameFormatError(
                    path, f'"actions"[{p}] has {len(row)} labels but player {p} has {size} actions in payoffs'
                )
