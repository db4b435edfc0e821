"""Gambit ``.nfg`` strategic-form files: parsing, loading and the text for saving.

Both versions are read: the payoff version (a flat list of payoffs after the
header) and the outcome version (a list of outcomes ``{ "name" u_1, ..., u_N }``
followed by one outcome index per contingency, ``0`` being the null outcome
with all-zero payoffs). Contingencies are listed with player 1's action
varying fastest; commas between payoffs are optional. The tokens come from
:mod:`did_core.game_io.nfg_tokens`; this module holds the grammar. Saving
writes the payoff version.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from did_core.game_io.errors import GameFormatError, _short
from did_core.game_io.file_bytes import _read_bytes
from did_core.game_io.nfg_tokens import _check_braces, _Token, _tokenize

_INT_RE = re.compile(r"\d+")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class _NfgParser:
    #: After :meth:`parse`: the player names and, when the header lists them, each player's strategy labels.
    players: list[str]
    labels: list[list[str]] | None

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
            raise self.fail(f"division by zero in {what} {_short(tok.text)} at {tok.where}") from None
        except OverflowError:
            raise self.fail(f"{what} {_short(tok.text)} at {tok.where} is out of float64 range") from None
        if not math.isfinite(value):
            raise self.fail(f"{what} {_short(tok.text)} at {tok.where} is out of float64 range")
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
        self.labels = None
        if self.peek().kind == "{":
            self.labels = []
            while self.peek().kind == "{":
                self.next()
                names: list[str] = []
                while self.peek().kind == "text":
                    names.append(self.next().text)
                self.expect("}", "a quoted strategy label or '}'", "header")
                sizes.append(len(names))
                self.labels.append(names)
        else:
            while self.peek().kind == "number":
                tok = self.next()
                if not _INT_RE.fullmatch(tok.text):
                    raise self.fail(
                        f"nfg header: strategy count {_short(tok.text)} at {tok.where} is not a non-negative integer"
                    )
                sizes.append(int(tok.text))
        self.expect("}", "'}' closing the strategy list", "header")
        if len(sizes) != n_players:
            raise self.fail(
                f"nfg header: the strategy list gives {len(sizes)} players but {n_players} players are named"
            )
        for p, size in enumerate(sizes):
            if size == 0:
                raise self.fail(f"nfg header: player {p} ({_short(players[p])}) has no actions")
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
        self.players = players
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


def _load_nfg(path: Path) -> tuple[Tensor, list[str], list[list[str]] | None]:
    """The game, its player names and (when the header lists them) its strategy labels."""
    source = str(path)
    tokens = _tokenize(_decode(_read_bytes(path)), source)
    _check_braces(tokens, source)
    parser = _NfgParser(tokens, source)
    game = parser.parse()
    return game, parser.players, parser.labels


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
