"""Reading Bayesian games from ``.json`` files (:mod:`did_core.bayesian`; docs/bayesian.md).

A Bayesian game file is a JSON object with a ``"prior"`` key::

    {"prior": [[0.8, 0.2], [0.5, 0.5]],          N lists: P_i(t_i) for each type of player i
     "payoffs": [...],                            nested [N][T_1]..[T_N][A_1]..[A_N]: u_i(a, t)
     "types": [["low", "high"], ["0", "1"]],      optional: N lists of T_i type names
     "players": ["buyer", "seller"],              optional: N names
     "actions": [["0", "1"], ["0", "1"]],         optional: N lists of A_i action names
     "name": "..."}                               optional

``payoffs[i][t_1]..[t_N][a_1]..[a_N]`` is player ``i``'s payoff at types ``t`` and
actions ``a``. Types are independent; each prior row is >= 0 and sums to 1 (within
1e-6; it is then renormalised). Every problem is a :class:`GameFormatError` in one
line naming the file; so is a game whose agent-normal form is over
:data:`did_core.bayesian.MAX_ANF_JOINT` joint actions (the padded size
``A_max^(N T_max)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from did_core.bayesian import BayesianGames, check_anf_size
from did_core.game_io.errors import GameFormatError, _short
from did_core.game_io.validation import _collect_payoffs, _is_number

__all__ = ["BayesianLabels", "bayesian_from_json_object", "PRIOR_TOLERANCE"]

#: How far a prior row's sum may be from 1 before it is refused.
PRIOR_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BayesianLabels:
    """Names of a Bayesian game's players, each player's types and actions (numbered where the file gives none)."""

    players: tuple[str, ...]
    types: tuple[tuple[str, ...], ...]
    actions: tuple[tuple[str, ...], ...]


def bayesian_from_json_object(obj: dict[str, Any], path: Path) -> tuple[BayesianGames, BayesianLabels]:
    """The Bayesian game of a JSON object with a ``"prior"`` (a batch of one, padded; module docstring) and its
    labels."""
    if "name" in obj and not isinstance(obj["name"], str):
        raise GameFormatError(path, f'"name" must be a string, got {type(obj["name"]).__name__}')
    priors = _priors(obj["prior"], path)
    n = len(priors)
    types = [len(row) for row in priors]
    shape = _shape(obj["payoffs"], path, n, types)
    sizes = shape[1 + n:]
    try:
        check_anf_size(n, max(types), max(sizes))
    except ValueError as exc:
        raise GameFormatError(path, str(exc)) from None
    flat: list[float] = []
    _collect_payoffs(obj["payoffs"], (), shape, str(path), flat)
    dense = torch.tensor(flat, dtype=torch.float64).reshape(shape)
    t_max, a_max = max(types), max(sizes)
    payoffs = torch.zeros(1, n, *[t_max] * n, *[a_max] * n, dtype=torch.float64)
    payoffs[(0, slice(None), *[slice(0, t) for t in types], *[slice(0, a) for a in sizes])] = dense
    prior = torch.zeros(1, n, t_max, dtype=torch.float64)
    type_mask = torch.zeros(1, n, t_max, dtype=torch.bool)
    mask = torch.zeros(1, n, a_max, dtype=torch.bool)
    for i, row in enumerate(priors):
        total = sum(row)
        prior[0, i, : len(row)] = torch.tensor([p / total for p in row], dtype=torch.float64)
        type_mask[0, i, : len(row)] = True
        mask[0, i, : sizes[i]] = True
    labels = BayesianLabels(
        tuple(_names(obj, "players", n, [f"player {i + 1}" for i in range(n)], path)),
        tuple(tuple(r) for r in _name_lists(obj, "types", types, path)),
        tuple(tuple(r) for r in _name_lists(obj, "actions", sizes, path)))
    return BayesianGames(payoffs, prior, mask, type_mask), labels


def _priors(value: Any, path: Path) -> list[list[float]]:
    """``"prior"``: one list per player of finite probabilities >= 0 summing to 1."""
    if not isinstance(value, list) or not value:
        raise GameFormatError(path, f'"prior" must be a non-empty list of lists (one per player), got {_short(value)}')
    out = []
    for i, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise GameFormatError(path, f'"prior"[{i}] must be a non-empty list of probabilities, got {_short(row)}')
        probs = []
        for t, p in enumerate(row):
            if not _is_number(p) or not math.isfinite(float(p)) or float(p) < 0:
                raise GameFormatError(path, f'"prior"[{i}][{t}] must be a finite number >= 0, got {_short(p)}')
            probs.append(float(p))
        if abs(sum(probs) - 1.0) > PRIOR_TOLERANCE:
            raise GameFormatError(path, f'"prior"[{i}] sums to {sum(probs):.9g}, not 1')
        out.append(probs)
    return out


def _shape(payoffs: Any, path: Path, n: int, types: list[int]) -> list[int]:
    """The shape ``[N, T_1..T_N, A_1..A_N]`` the payoffs must have, read along their first elements and checked
    against the prior (the other branches are checked while the payoffs are collected)."""
    shape: list[int] = []
    node = payoffs
    while isinstance(node, list):
        if not node:
            raise GameFormatError(path, f'"payoffs" has an empty list at depth {len(shape)}')
        shape.append(len(node))
        node = node[0]
    if len(shape) != 1 + 2 * n:
        raise GameFormatError(path, f'"payoffs" of a Bayesian game with N = {n} players (the prior\'s rows) must be '
                                    f'nested 1 + 2N = {1 + 2 * n} deep ([N][T_1]..[T_N][A_1]..[A_N]), got depth '
                                    f'{len(shape)} (shape {shape})')
    if shape[0] != n or shape[1:1 + n] != types:
        raise GameFormatError(path, f'"payoffs" has shape {shape} but the prior gives N = {n} players with '
                                    f'{types} types: the payoffs start [N][T_1]..[T_N] = {[n, *types]}')
    return shape


def _names(obj: dict[str, Any], key: str, count: int, default: list[str], path: Path) -> list[str]:
    """The optional list of ``count`` distinct strings ``obj[key]``, else ``default``."""
    if key not in obj:
        return default
    value = obj[key]
    if not isinstance(value, list) or len(value) != count or not all(isinstance(x, str) for x in value):
        raise GameFormatError(path, f'"{key}" must be a list of {count} strings, got {_short(value)}')
    if len(set(value)) != len(value):
        raise GameFormatError(path, f'"{key}" must name each entry once, got {_short(value)}')
    return value


def _name_lists(obj: dict[str, Any], key: str, counts: list[int], path: Path) -> list[list[str]]:
    """The optional ``obj[key]``: one list of names per player, ``counts[i]`` for player ``i`` (else numbered)."""
    if key not in obj:
        return [[str(k + 1) for k in range(c)] for c in counts]
    value = obj[key]
    if not isinstance(value, list) or len(value) != len(counts):
        raise GameFormatError(path, f'"{key}" must hold {len(counts)} lists, one per player, got {_short(value)}')
    return [_names({key: row}, key, c, [], path) for row, c in zip(value, counts)]
