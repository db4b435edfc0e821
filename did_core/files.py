"""Reading a user-supplied file safely: regular files only, with a size limit (text: UTF-8 only; JSON).

A FIFO or a device named as an input file would otherwise hang a command
(``/dev/stdin``, a named pipe) or exhaust memory (``/dev/zero``); an oversized
file would be read whole before anything can check it. Every way a read can fail
becomes an :class:`UnreadableFile` whose message says why in a few words (the
caller names the file and its role).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["UnreadableFile", "read_regular_file", "read_text_file", "read_json_file", "MIB"]

MIB = 1 << 20


class UnreadableFile(ValueError):
    """A file that cannot be read as an input: missing, not a regular file, too large, or an OS error."""


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` (following links) when it is a regular file of at most ``limit`` bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UnreadableFile("file not found") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableFile("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile("is not a regular file (a pipe, device or socket); copy its content into a file")
    if info.st_size > limit:
        raise UnreadableFile(f"is {info.st_size / MIB:.1f} MiB; files over {limit / MIB:.0f} MiB are refused")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limit:  # grew while being read
        raise UnreadableFile(f"is over {limit / MIB:.0f} MiB; refused")
    return data


def read_text_file(path: Path, limit: int) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped), read as :func:`read_regular_file` reads it."""
    try:
        return read_regular_file(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json_file(path: Path, limit: int) -> Any:
    """The JSON value in ``path``, read as :func:`read_text_file` reads it; malformed JSON (also nested too deeply
    for the parser, or a number too long to convert) is an :class:`UnreadableFile` saying where or why."""
    text = read_text_file(path, limit)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise UnreadableFile("is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise UnreadableFile(f"is not valid JSON: {exc}") from None
