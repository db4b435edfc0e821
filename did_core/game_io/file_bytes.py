"""Reading a game file's raw bytes, shared by the format readers.

Every way the read can fail (missing file, a directory, a pipe or device, a file
over :data:`GAME_FILE_LIMIT`, no permission, other OS errors) becomes a
:class:`GameFormatError` naming the file, so the JSON, ``.npy`` and ``.nfg``
readers only deal with the bytes themselves.
"""

from __future__ import annotations

from pathlib import Path

from did_core.files import MIB, UnreadableFile, read_regular_file
from did_core.game_io.errors import GameFormatError

#: The largest game file read (a float64 game of 16M payoffs).
GAME_FILE_LIMIT = 128 * MIB


def _read_bytes(path: Path) -> bytes:
    try:
        return read_regular_file(path, GAME_FILE_LIMIT)
    except UnreadableFile as exc:
        raise GameFormatError(path, str(exc)) from None
