"""Writing one game to ``.json``, ``.npy`` or (payoff-version) ``.nfg``, atomically.

:func:`save_game` validates the game like a loaded one, writes it to a
temporary file in the target directory and moves it into place with
``os.replace``, so a failed save never leaves a half-written file or
replaces a good one. The ``.nfg`` text comes from
:mod:`did_core.game_io.nfg_format`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from did_core.game_io.errors import GameFormatError
from did_core.game_io.nfg_format import _nfg_text
from did_core.game_io.validation import game_from_array, game_from_nested

_SAVE_SUFFIXES = (".json", ".npy", ".nfg")


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
