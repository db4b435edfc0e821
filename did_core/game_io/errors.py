"""The error raised for every unreadable or unwritable game, and its message helpers.

All of ``did_core.game_io`` reports problems as :class:`GameFormatError` with a
single-line ``"<file>: <problem>"`` message; this module holds that class and
the small text helpers the readers use to build such messages, so every format
reports errors the same way.
"""

from __future__ import annotations

import os
from typing import Any

from did_core.files import shown

_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    """Escape every line break (as ``str.splitlines`` sees them) so a message is one line."""
    return text.translate(_LINE_BREAKS)


def _short(value: Any, limit: int = 40) -> str:
    return shown(value, limit)


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
