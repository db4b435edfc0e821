"""Reading NumPy ``.npy`` games: one numeric array of shape ``[N, A_1, ..., A_N]``.

The file is loaded with ``allow_pickle=False`` after checking its magic bytes
and that its header declares no more data than the file holds (numpy would
allocate the declared array first: a 100-byte file can ask for 149 GiB), so
``.npz`` archives, object arrays, lying headers and non-numpy files get a clear
error instead of a numpy traceback; the array itself is validated by
:func:`game_from_array`. (Writing ``.npy`` is ``np.save`` inside
:func:`save_game`.)
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from torch import Tensor

from did_core.game_io.errors import GameFormatError
from did_core.game_io.file_bytes import _read_bytes
from did_core.game_io.validation import game_from_array


def _check_declared_size(path: Path, data: bytes) -> None:
    """Refuse a header that declares more array data than ``data`` holds after it."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
    except ValueError as exc:
        raise GameFormatError(path, f"invalid .npy file: {exc or 'unreadable header'}") from None
    declared, held = math.prod(shape) * dtype.itemsize, len(data) - stream.tell()
    if not dtype.hasobject and declared > held:
        raise GameFormatError(path, f"invalid .npy file: unexpected EOF: its header declares shape {list(shape)} "
                                    f"({declared} bytes), the file holds {held} bytes after it")


def _load_npy(path: Path) -> Tensor:
    data = _read_bytes(path)
    if data.startswith(b"PK\x03\x04"):
        raise GameFormatError(path, "expected a single .npy array, got an .npz (zip) archive")
    if not data.startswith(b"\x93NUMPY"):
        raise GameFormatError(path, "invalid .npy file: missing the numpy magic header")
    _check_declared_size(path, data)
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
