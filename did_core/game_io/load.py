"""The :func:`load_game` dispatcher: the file suffix picks the format reader.

Suffixes are matched case-insensitively against :data:`SUPPORTED_SUFFIXES`;
an unknown or missing suffix is a :class:`GameFormatError` that lists the
supported ones. Each reader lives in its own ``*_format`` module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from did_core.bayesian import BayesianGames
from did_core.game_io.bayesian_format import BayesianLabels, bayesian_from_json_object
from did_core.game_io.errors import GameFormatError
from did_core.game_io.json_format import _load_json, game_from_json_object, read_json_object
from did_core.game_io.nfg_format import _load_nfg
from did_core.game_io.npy_format import _load_npy

SUPPORTED_SUFFIXES = (".json", ".npy", ".nfg")

_LOADERS = {".json": _load_json, ".npy": lambda path: (_load_npy(path), None, None), ".nfg": _load_nfg}


@dataclass(frozen=True)
class GameLabels:
    """Names of a game's players and of each player's actions, for display.

    Taken from the file (JSON ``"players"``/``"actions"``, an ``.nfg`` header's
    player names and strategy labels); missing ones are numbered from 1.
    """

    players: tuple[str, ...]
    actions: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, game: Tensor, players: list[str] | None = None,
           actions: list[list[str]] | None = None) -> "GameLabels":
        """Labels of ``game [N, A_1..A_N]``, numbered where the file gives none."""
        sizes = game.shape[1:]
        return cls(tuple(players or [f"player {p + 1}" for p in range(len(sizes))]),
                   tuple(tuple(row) for row in (actions or [[str(a + 1) for a in range(n)] for n in sizes])))


def load_game(path: str | os.PathLike[str]) -> Tensor:
    """Load one game ``[N, A_1..A_N]`` as a float64 tensor; the suffix picks the format."""
    return load_labelled_game(path)[0]


def load_labelled_game(path: str | os.PathLike[str]) -> tuple[Tensor, GameLabels]:
    """Load one game ``[N, A_1..A_N]`` (float64) and the names its file gives its players and actions."""
    path = Path(path)
    game, players, actions = _loader(path)(path)
    return game, GameLabels.of(game, players, actions)


def load_game_or_bayesian(path: str | os.PathLike[str]
                          ) -> tuple[Tensor, GameLabels] | tuple[BayesianGames, BayesianLabels]:
    """A normal-form game as :func:`load_labelled_game` reads it, or, for a ``.json`` file with a ``"prior"``, the
    Bayesian game it holds (a batch of one, :mod:`did_core.game_io.bayesian_format`) and its labels."""
    path = Path(path)
    loader = _loader(path)
    if loader is not _load_json:
        return load_labelled_game(path)
    obj = read_json_object(path)
    if "prior" in obj:
        return bayesian_from_json_object(obj, path)
    game, players, actions = game_from_json_object(obj, path)
    return game, GameLabels.of(game, players, actions)


def _loader(path: Path):  # noqa: ANN202 - one of the readers in _LOADERS
    """The reader of ``path``'s suffix (case-insensitive); an unknown one is a :class:`GameFormatError`."""
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        shown = repr(path.suffix) if path.suffix else "no suffix"
        raise GameFormatError(
            path, f"unsupported file type {shown}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return loader
