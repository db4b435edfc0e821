"""The :func:`load_game` dispatcher: the file suffix picks the format reader.

Suffixes are matched case-insensitively against :data:`SUPPORTED_SUFFIXES`;
an unknown or missing suffix is a :class:`GameFormatError` that lists the
supported ones. Each reader lives in its own ``*_format`` module.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from did_core.game_io.errors import GameFormatError
from did_core.game_io.json_format import _load_json
from did_core.game_io.nfg_format import _load_nfg
from did_core.game_io.npy_format import _load_npy

SUPPORTED_SUFFIXES = (".json", ".npy", ".nfg")

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
