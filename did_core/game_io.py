"""Reading and writing single games ``[N, A_1, ..., A_N]`` (docs/mathematics.md, section 1).

Supported files (chosen by suffix, case-insensitive):

* ``.json`` -- an object ``{"payoffs": [...]}`` with the payoffs nested
  ``[N][A_1]...[A_N]`` (``payoffs[p][a_1]...[a_N]`` is player ``p``'s payoff).
  Optional keys: ``"name"`` (a string), ``"players"`` (``N`` labels),
  ``"actions"`` (``N`` lists of labels, list ``p`` of length ``A_p``); when
  present they are validated against the payoffs. Other keys are ignored.
* ``.npy`` -- a numeric numpy array of shape ``[N, A_1, ..., A_N]``
  (loaded with ``allow_pickle=False``).
* ``.nfg`` -- Gambit strategic-form files, both the payoff version
  (a flat list of payoffs after the header) and the outcome version (a list of
  outcomes ``{ "name" u_1, ..., u_N }`` followed by one outcome index per
  contingency, ``0`` being the null outcome with all-zero payoffs).
  Contingencies are listed with player 1's action varying fastest. Payoffs may
  be integers, decimals (with optional exponent) or rationals such as ``3/2``;
  commas between payoffs are optional. Quoted strings may contain spaces,
  braces and escaped quotes (a backslash escapes the next character).

Every problem with a file raises :class:`GameFormatError` (a ``ValueError``)
whose message is a single line ``"<file>: <problem>"``.

Loaded games are float64 CPU tensors. :func:`save_game` writes ``.json``,
``.npy`` and (payoff-version) ``.nfg`` files atomically.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import re
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "GameFormatError",
    "SUPPORTED_SUFFIXES",
    "load_game",
    "save_game",
    "game_from_nested",
    "game_from_array",
    "parse_nfg",
]

SUPPORTED_SUFFIXES = (".json", ".npy", ".nfg")
_SAVE_SUFFIXES = (".json", ".npy", ".nfg")


_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    """Escape every line break (as ``str.splitlines`` sees them) so a message is one line."""
    return text.translate(_LINE_BREAKS)


class GameFormatError(ValueError):
    """A game file (or in-memory game) that cannot be read or written.

    ``GameFormatError(source, problem)`` has the one-line message
    ``"<source>: <problem>"`` and keeps ``source`` and ``problem`` as
    attributes. ``GameFormatError(message)`` is accepted too (``source`` is
    then ``None``). Line breaks in either part are escaped, so ``str(err)``
    is always a single line.
    """

    def __init__(self, source: str | os.PathLike[str], problem: str | None = None) -> None:
        if problem is None:
            self.source: str | None = None
            self.problem = str(source)
            message = self.problem
        else:
            self.source = str(source)
            self.problem = problem
            message = f"{self.source}: {problem}"
        super().__init__(_one_line(message))


# ---------------------------------------------------------------------------
# Validation of in-memory payoffs
# ---------------------------------------------------------------------------


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _index_path(prefix: str, index: tuple[int, ...]) -> str:
    return prefix + "".join(f"[{i}]" for i in index)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_shape(shape: tuple[int, ...], source: str, what: str) -> None:
    """Shared rank/size checks for an array-like game of the given shape."""
    if len(shape) == 0 or shape[0] == 0:
        raise GameFormatError(source, f"{what} has no players (N = 0)")
    n_players = shape[0]
    if len(shape) != n_players + 1:
        raise GameFormatError(
            source,
            f"wrong nesting: {what} has shape {list(shape)} (depth {len(shape)}) but "
            f"N = {n_players} players need depth N+1 = {n_players + 1}, i.e. [N, A_1..A_N]",
        )
    for p, size in enumerate(shape[1:]):
        if size == 0:
            raise GameFormatError(
                source, f"player {p} has no actions ({what} has shape {list(shape)})"
            )


def game_from_nested(obj: Any, source: str = "payoffs") -> Tensor:
    """Validate nested lists ``[N][A_1]..[A_N]`` and return a float64 tensor.

    ``source`` names where the data came from (a file name) and starts every
    error message. Tuples count as lists; numpy arrays and tensors are passed
    to :func:`game_from_array`. Entries must be real numbers (not booleans)
    and finite.
    """
    if isinstance(obj, (np.ndarray, Tensor)):
        return game_from_array(obj, source)
    if not isinstance(obj, (list, tuple)):
        raise GameFormatError(
            source, f"payoffs must be a nested list [N][A_1]..[A_N], got {type(obj).__name__}"
        )
    if len(obj) == 0:
        raise GameFormatError(source, "payoffs is empty: a game needs at least one player (N = 0)")

    # Infer the shape along the first elements, then check every branch against it.
    shape: list[int] = []
    node: Any = obj
    index: tuple[int, ...] = ()
    while isinstance(node, (list, tuple)):
        if len(node) == 0:
            depth = len(index)
            raise GameFormatError(
                source,
                f"player {depth - 1} has no actions: {_index_path('payoffs', index)} is an empty list",
            )
        shape.append(len(node))
        node = node[0]
        index = index + (0,)
    n_players = shape[0]
    if len(shape) != n_players + 1:
        raise GameFormatError(
            source,
            f"wrong nesting: payoffs for N = {n_players} players must be nested N+1 = "
            f"{n_players + 1} deep ([N][A_1]..[A_N]), got depth {len(shape)} (shape {shape})",
        )

    flat: list[float] = []

    def walk(node: Any, index: tuple[int, ...]) -> None:
        depth = len(index)
        where = _index_path("payoffs", index)
        if depth < len(shape):
            if not isinstance(node, (list, tuple)):
                raise GameFormatError(
                    source,
                    f"ragged lists: {where} is {_short(node)}, expected a list of length {shape[depth]}",
                )
            if len(node) != shape[depth]:
                raise GameFormatError(
                    source,
                    f"ragged lists: {where} has length {len(node)}, expected {shape[depth]}",
                )
            for i, child in enumerate(node):
                walk(child, index + (i,))
            return
        if isinstance(node, (list, tuple)):
            raise GameFormatError(
                source, f"ragged lists: {where} is a list, expected a number (shape {shape})"
            )
        if isinstance(node, (bool, np.bool_)):
            raise GameFormatError(
                source, f"non-numeric entry {node!r} at {where} (booleans are not numbers)"
            )
        if not _is_number(node):
            raise GameFormatError(
                source, f"non-numeric entry {_short(node)} ({type(node).__name__}) at {where}"
            )
        try:
            value = float(node)
        except (OverflowError, ValueError):
            raise GameFormatError(source, f"payoff {_short(node)} at {where} is out of float64 range") from None
        if not math.isfinite(value):
            raise GameFormatError(source, f"non-finite payoff {value!r} (NaN/inf) at {where}")
        flat.append(value)

    walk(obj, ())
    return torch.tensor(flat, dtype=torch.float64).reshape(shape)


def game_from_array(array: Any, source: str = "array") -> Tensor:
    """Validate a numpy array or tensor ``[N, A_1..A_N]``; return a float64 CPU tensor."""
    if isinstance(array, Tensor):
        if array.dtype == torch.bool or array.is_complex():
            raise GameFormatError(source, f"payoffs must be real numbers, got dtype {array.dtype}")
        array = array.detach().cpu().to(torch.float64).numpy()
    if not isinstance(array, np.ndarray):
        raise GameFormatError(source, f"expected a numpy array, got {type(array).__name__}")
    kind = array.dtype.kind
    if kind == "b":
        raise GameFormatError(source, "array has boolean dtype; payoffs must be numbers (booleans are not numbers)")
    if kind not in "iuf":
        raise GameFormatError(source, f"array has non-numeric dtype {array.dtype} (need integer or float)")
    _check_shape(tuple(array.shape), source, "array")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(array, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GameFormatError(
            source,
            f"non-finite payoff {array[where]!r} (NaN/inf, or out of float64 range) at index {list(where)}",
        )
    return torch.from_numpy(out.copy())


# ---------------------------------------------------------------------------
# File readers
# ---------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise GameFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise GameFormatError(path, "is a directory, not a game file") from None
    except OSError as exc:
        raise GameFormatError(path, f"cannot read file: {exc.strerror or exc}") from None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _load_json(path: Path) -> Tensor:
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GameFormatError(path, f"invalid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GameFormatError(path, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise GameFormatError(path, "invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise GameFormatError(
            path, f'JSON top level must be an object {{"payoffs": [...]}}, got {type(obj).__name__}'
        )
    if "payoffs" not in obj:
        keys = ", ".join(repr(k) for k in obj) or "none"
        raise GameFormatError(path, f'missing "payoffs" key (keys present: {keys})')
    games = game_from_nested(obj["payoffs"], str(path))
    _check_json_metadata(obj, games, path)
    return games


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


def _load_npy(path: Path) -> Tensor:
    data = _read_bytes(path)
    if data.startswith(b"PK\x03\x04"):
        raise GameFormatError(path, "expected a single .npy array, got an .npz (zip) archive")
    if not data.startswith(b"\x93NUMPY"):
        raise GameFormatError(path, "invalid .npy file: missing the numpy magic header")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        if "pickle" in text.lower():
            raise GameFormatError(path, "npy holds an object array, which would need pickle (not allowed)") from None
        raise GameFormatError(path, f"invalid .npy file: {text or type(exc).__name__}") from None
    except (OSError, EOFError) as exc:
        raise GameFormatError(path, f"invalid .npy file: {exc or type(exc).__name__}") from None
    if not isinstance(array, np.ndarray):
        raise GameFormatError(path, f"invalid .npy file: got {type(array).__name__}, not an array")
    if array.dtype.names is not None:
        raise GameFormatError(path, f"npy array has structured dtype {array.dtype}; need integer or float")
    if array.ndim < 2:
        raise GameFormatError(
            path,
            f"npy array has wrong rank {array.ndim} (shape {list(array.shape)}); need [N, A_1..A_N] with rank N+1",
        )
    if array.shape[0] > 0 and array.ndim != array.shape[0] + 1:
        raise GameFormatError(
            path,
            f"npy array has wrong rank {array.ndim} (shape {list(array.shape)}); "
            f"N = {array.shape[0]} players need rank N+1 = {array.shape[0] + 1}",
        )
    return game_from_array(array, str(path))


# ---------------------------------------------------------------------------
# Gambit .nfg
# ---------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"[+-]?(?:\d+/\d+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_INT_RE = re.compile(r"\d+")
_DELIMS = set('{},"')


class _Token:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind: str, text: str, line: int, col: int) -> None:
        self.kind = kind  # "{", "}", ",", "text", "number", "symbol", "eof"
        self.text = text
        self.line = line
        self.col = col

    @property
    def where(self) -> str:
        return f"line {self.line} column {self.col}"

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of file"
        if self.kind == "text":
            return f"string {_short(self.text)}"
        if self.kind in ("number", "symbol"):
            return f"{_short(self.text)}"
        return f"'{self.kind}'"


def _tokenize(text: str, source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    line, line_start = 1, 0
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            line_start = i + 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        col = i - line_start + 1
        if c in "{},":
            tokens.append(_Token(c, c, line, col))
            i += 1
            continue
        if c == '"':
            start_line, start_col = line, col
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise GameFormatError(
                        source, f"unterminated quoted string starting at line {start_line} column {start_col}"
                    )
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    if text[i + 1] == "\n":
                        line += 1
                        line_start = i + 2
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                    line_start = i + 1
                chars.append(ch)
                i += 1
            tokens.append(_Token("text", "".join(chars), start_line, start_col))
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in _DELIMS:
            j += 1
        word = text[i:j]
        kind = "number" if (c.isdigit() or c in "+-.") else "symbol"
        if kind == "number" and not _NUMBER_RE.fullmatch(word):
            raise GameFormatError(source, f"invalid number {_short(word)} at line {line} column {col}")
        tokens.append(_Token(kind, word, line, col))
        i = j
    col = n - line_start + 1
    tokens.append(_Token("eof", "", line, col))
    return tokens


def _check_braces(tokens: list[_Token], source: str) -> None:
    stack: list[_Token] = []
    for tok in tokens:
        if tok.kind == "{":
            stack.append(tok)
        elif tok.kind == "}":
            if not stack:
                raise GameFormatError(source, f"unbalanced braces: unexpected '}}' at {tok.where}")
            stack.pop()
    if stack:
        raise GameFormatError(source, f"unbalanced braces: '{{' at {stack[-1].where} is never closed")


class _NfgParser:
    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.source = source

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def next(self) -> _Token:
        tok = self.tokens[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def fail(self, problem: str) -> GameFormatError:
        return GameFormatError(self.source, problem)

    def expect(self, kind: str, what: str, context: str) -> _Token:
        tok = self.next()
        if tok.kind != kind:
            raise self.fail(f"nfg {context}: expected {what} at {tok.where}, got {tok.describe()}")
        return tok

    def number(self, tok: _Token, what: str) -> float:
        try:
            value = float(Fraction(tok.text))
        except ZeroDivisionError:
            raise self.fail(f"division by zero in {what} {tok.text!r} at {tok.where}") from None
        except OverflowError:
            raise self.fail(f"{what} {tok.text!r} at {tok.where} is out of float64 range") from None
        if not math.isfinite(value):
            raise self.fail(f"{what} {tok.text!r} at {tok.where} is out of float64 range")
        return value

    # -- header ------------------------------------------------------------

    def header(self) -> tuple[list[str], list[int]]:
        tok = self.next()
        if tok.kind != "symbol" or tok.text != "NFG":
            raise self.fail(f"nfg header: file must start with 'NFG', got {tok.describe()} at {tok.where}")
        tok = self.next()
        if tok.kind != "number" or tok.text != "1":
            raise self.fail(f"nfg header: unsupported version {tok.describe()} at {tok.where} (only version 1)")
        tok = self.next()
        if tok.kind != "symbol" or tok.text not in ("R", "D"):
            raise self.fail(f"nfg header: expected number type 'R' or 'D' at {tok.where}, got {tok.describe()}")
        self.expect("text", "the quoted game title", "header")
        self.expect("{", "'{' opening the player list", "header")
        players: list[str] = []
        while self.peek().kind == "text":
            players.append(self.next().text)
        self.expect("}", "a quoted player name or '}'", "header")
        if not players:
            raise self.fail("nfg header: the player list is empty (N = 0)")
        sizes = self.strategies(players)
        if self.peek().kind == "text":  # optional comment
            self.next()
        return players, sizes

    def strategies(self, players: list[str]) -> list[int]:
        n_players = len(players)
        self.expect("{", "'{' opening the strategy list", "header")
        sizes: list[int] = []
        if self.peek().kind == "{":
            while self.peek().kind == "{":
                self.next()
                count = 0
                while self.peek().kind == "text":
                    self.next()
                    count += 1
                self.expect("}", "a quoted strategy label or '}'", "header")
                sizes.append(count)
        else:
            while self.peek().kind == "number":
                tok = self.next()
                if not _INT_RE.fullmatch(tok.text):
                    raise self.fail(
                        f"nfg header: strategy count {tok.text!r} at {tok.where} is not a non-negative integer"
                    )
                sizes.append(int(tok.text))
        self.expect("}", "'}' closing the strategy list", "header")
        if len(sizes) != n_players:
            raise self.fail(
                f"nfg header: the strategy list gives {len(sizes)} players but {n_players} players are named"
            )
        for p, size in enumerate(sizes):
            if size == 0:
                raise self.fail(f"nfg header: player {p} ({players[p]!r}) has no actions")
        return sizes

    # -- bodies ------------------------------------------------------------

    def payoff_body(self, n_players: int, sizes: list[int]) -> np.ndarray:
        cells = math.prod(sizes)
        values: list[float] = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                break
            if tok.kind == ",":
                continue
            if tok.kind != "number":
                raise self.fail(f"nfg body: expected a payoff at {tok.where}, got {tok.describe()}")
            values.append(self.number(tok, "payoff"))
        expected = n_players * cells
        if len(values) != expected:
            raise self.fail(
                f"nfg body: wrong count of payoffs: expected {expected} "
                f"({n_players} players x {cells} contingencies), got {len(values)}"
            )
        return np.asarray(values, dtype=np.float64).reshape(cells, n_players)

    def outcome_body(self, n_players: int, sizes: list[int]) -> np.ndarray:
        self.expect("{", "'{' opening the outcome list", "outcome list")
        outcomes: list[list[float]] = [[0.0] * n_players]  # index 0: the null outcome
        while self.peek().kind == "{":
            self.next()
            k = len(outcomes)
            self.expect("text", f"the quoted name of outcome {k}", "outcome list")
            payoffs: list[float] = []
            while True:
                tok = self.next()
                if tok.kind == "}":
                    break
                if tok.kind == ",":
                    continue
                if tok.kind != "number":
                    raise self.fail(
                        f"nfg outcome list: expected a payoff of outcome {k} at {tok.where}, got {tok.describe()}"
                    )
                payoffs.append(self.number(tok, f"payoff of outcome {k}"))
            if len(payoffs) != n_players:
                raise self.fail(
                    f"nfg outcome list: wrong count of payoffs: outcome {k} has {len(payoffs)} payoffs, "
                    f"expected {n_players} (one per player)"
                )
            outcomes.append(payoffs)
        self.expect("}", "'{' or '}' closing the outcome list", "outcome list")
        cells = math.prod(sizes)
        indices: list[int] = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                break
            if tok.kind != "number" or not _INT_RE.fullmatch(tok.text):
                raise self.fail(
                    f"nfg body: expected a non-negative integer outcome index at {tok.where}, got {tok.describe()}"
                )
            index = int(tok.text)
            if index >= len(outcomes):
                raise self.fail(
                    f"nfg body: outcome index {index} at {tok.where} is out of range: the file defines "
                    f"{len(outcomes) - 1} outcomes (valid indices 0..{len(outcomes) - 1}, 0 = null outcome)"
                )
            indices.append(index)
        if len(indices) != cells:
            raise self.fail(
                f"nfg body: wrong count of outcome indices: expected {cells} (one per contingency), got {len(indices)}"
            )
        table = np.asarray(outcomes, dtype=np.float64)
        return table[np.asarray(indices, dtype=np.int64)]

    def parse(self) -> Tensor:
        players, sizes = self.header()
        n_players = len(players)
        tok = self.peek()
        if tok.kind == "{":
            per_cell = self.outcome_body(n_players, sizes)
        elif tok.kind == "number":
            per_cell = self.payoff_body(n_players, sizes)
        elif tok.kind == "eof":
            raise self.fail("nfg body: missing: no payoffs or outcomes after the header")
        else:
            raise self.fail(f"nfg body: expected payoffs or an outcome list at {tok.where}, got {tok.describe()}")
        # per_cell[c, p]: contingency c counts with player 1's action fastest,
        # i.e. column-major (Fortran) order over (a_1, ..., a_N).
        game = np.stack([per_cell[:, p].reshape(sizes, order="F") for p in range(n_players)])
        return torch.from_numpy(np.ascontiguousarray(game))


def parse_nfg(text: str, source: str = "<nfg>") -> Tensor:
    """Parse the text of a Gambit ``.nfg`` file (payoff or outcome version)."""
    tokens = _tokenize(text, source)
    _check_braces(tokens, source)
    return _NfgParser(tokens, source).parse()


def _load_nfg(path: Path) -> Tensor:
    return parse_nfg(_decode(_read_bytes(path)), str(path))


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------

_LOADERS = {".json": _load_json, ".npy": _load_npy, ".nfg": _load_nfg}


def load_game(path: str | os.PathLike[str]) -> Tensor:
    """Load one game ``[N, A_1..A_N]`` as a float64 tensor; the suffix picks the format."""
    path = Path(path)
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        shown = repr(path.suffix) if path.suffix else "no suffix"
        raise GameFormatError(
            path, f"unsupported file type {shown}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return loader(path)


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _nfg_text(game: np.ndarray, name: str) -> str:
    n_players = game.shape[0]
    sizes = game.shape[1:]

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    players = " ".join(quote(f"Player {p + 1}") for p in range(n_players))
    counts = " ".join(str(s) for s in sizes)
    per_cell = np.stack([game[p].reshape(-1, order="F") for p in range(n_players)], axis=1)
    body = "\n".join(" ".join(_format_number(float(v)) for v in row) for row in per_cell)
    return f"NFG 1 R {quote(name)} {{ {players} }} {{ {counts} }}\n\n{body}\n"


def save_game(
    path: str | os.PathLike[str], games: Any, *, name: str | None = None
) -> None:
    """Write one game ``[N, A_1..A_N]`` to ``.json``, ``.npy`` or ``.nfg`` atomically.

    ``games`` may be a tensor, a numpy array or nested lists; it is validated
    like a loaded game. The file is written to a temporary file in the same
    directory and moved into place with ``os.replace``. ``name`` is stored as
    the JSON ``"name"`` / the nfg title (ignored for ``.npy``). ``.nfg`` files
    use the payoff version.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SAVE_SUFFIXES:
        shown = repr(path.suffix) if path.suffix else "no suffix"
        raise GameFormatError(path, f"cannot save file type {shown}; supported: {', '.join(_SAVE_SUFFIXES)}")
    if isinstance(games, (np.ndarray, Tensor)):
        tensor = game_from_array(games, f"{path} (game to save)")
    else:
        tensor = game_from_nested(games, f"{path} (game to save)")
    game = tensor.numpy()

    directory = path.parent
    if not directory.is_dir():
        raise GameFormatError(path, f"cannot save: directory {str(directory)!r} does not exist")
    tmp_name = str(directory / f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        # os.open with mode 0o666 lets the umask decide the final permissions.
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise GameFormatError(path, f"cannot save: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if suffix == ".npy":
                np.save(handle, game, allow_pickle=False)
            elif suffix == ".json":
                obj: dict[str, Any] = {}
                if name is not None:
                    obj["name"] = name
                obj["payoffs"] = game.tolist()
                handle.write((json.dumps(obj) + "\n").encode("utf-8"))
            else:
                handle.write(_nfg_text(game, name or path.stem).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise GameFormatError(path, f"cannot save: {exc.strerror or exc}") from None
        raise
