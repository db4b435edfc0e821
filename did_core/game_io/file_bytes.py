"""Reading a game file's raw bytes, shared by the format readers.

Every way the read can fail (missing file, a directory, no permission, other
OS errors) becomes a :class:`GameFormatError` naming the file, so the
JSON, ``.npy`` and ``.nfg`` readers only deal with the bytes themselves.
"""

from __future__ import annotations

from pathlib import Path

from did_core.game_io.errors import GameFormatError


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise GameFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise GameFormatError(path, "is a directory, not a game file") from None
    except OSError as exc:
        raise GameFormatError(path, f"cannot read file: {exc.strerror or exc}") from None
