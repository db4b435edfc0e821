"""Lexing Gambit ``.nfg`` text into tokens, before any parsing.

Splits the text into braces, commas, quoted strings (which may hold spaces,
braces and backslash-escaped characters), numbers (integers, decimals with
optional exponent, rationals such as ``3/2``) and bare symbols, each with its
line and column for error messages, and checks that braces balance. Keeping
the character-level work here lets :mod:`did_core.game_io.nfg_format` parse
the grammar token by token.
"""

from __future__ import annotations

import re

from did_core.game_io.errors import GameFormatError, _short

_NUMBER_RE = re.compile(r"[+-]?(?:\d+/\d+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
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
