"""Validation of in-memory payoffs: nested lists, numpy arrays and tensors.

Every game, whether read from a file or handed to :func:`save_game`, passes
through :func:`game_from_nested` or :func:`game_from_array`, which check the
``[N, A_1..A_N]`` shape and that every payoff is a finite real number, and
return a float64 CPU tensor. Keeping the checks here makes all formats accept
and reject exactly the same games.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from did_core.game_io.errors import GameFormatError, _short


def _index_path(prefix: str, index: tuple[int, ...]) -> str:
    return prefix + "".join(f"[{i}]" for i in index)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_shape(shape: tuple[int, ...], source: str, what: str) -> None:
    """Shared rank/size checks for an array-like game of the given shape."""
    if len(shape) == 0 or shape[0] == 0:
        raise GameFormatError(source, f"{what} has no players (N = 0)")
    n_players = shape[0]
    if len(shape) != n_players + 1:
        raise GameFormatError(
            source,
            f"wrong nesting: {what} has shape {list(shape)} (depth {len(shape)}) but "
            f"N = {n_players} players need depth N+1 = {n_players + 1}, i.e. [N, A_1..A_N]",
        )
    for p, size in enumerate(shape[1:]):
        if size == 0:
            raise GameFormatError(
                source, f"player {p} has no actions ({what} has shape {list(shape)})"
            )


def game_from_nested(obj: Any, source: str = "payoffs") -> Tensor:
    """Validate nested lists ``[N][A_1]..[A_N]`` and return a float64 tensor.

    ``source`` names where the data came from (a file name) and starts every
    error message. Tuples count as lists; numpy arrays and tensors are passed
    to :func:`game_from_array`. Entries must be real numbers (not booleans)
    and finite.
    """
    if isinstance(obj, (np.ndarray, Tensor)):
        return game_from_array(obj, source)
    if not isinstance(obj, (list, tuple)):
        raise GameFormatError(
            source, f"payoffs must be a nested list [N][A_1]..[A_N], got {type(obj).__name__}"
        )
    if len(obj) == 0:
        raise GameFormatError(source, "payoffs is empty: a game needs at least one player (N = 0)")
    shape = _nested_shape(obj, source)
    flat: list[float] = []
    _collect_payoffs(obj, (), shape, source, flat)
    return torch.tensor(flat, dtype=torch.float64).reshape(shape)


def _nested_shape(obj: list | tuple, source: str) -> list[int]:
    """The shape ``[N, A_1..A_N]`` of nested lists, read along their first elements.

    Only the first branch is read: :func:`_collect_payoffs` checks every other
    branch against it, so a ragged list is reported where it departs.
    """
    shape: list[int] = []
    node: Any = obj
    index: tuple[int, ...] = ()
    while isinstance(node, (list, tuple)):
        if len(node) == 0:
            depth = len(index)
            raise GameFormatError(
                source,
                f"player {depth - 1} has no actions: {_index_path('payoffs', index)} is an empty list",
            )
        shape.append(len(node))
        node = node[0]
        index = index + (0,)
    n_players = shape[0]
    if len(shape) != n_players + 1:
        raise GameFormatError(
            source,
            f"wrong nesting: payoffs for N = {n_players} players must be nested N+1 = "
            f"{n_players + 1} deep ([N][A_1]..[A_N]), got depth {len(shape)} (shape {shape})",
        )
    return shape


def _collect_payoffs(node: Any, index: tuple[int, ...], shape: list[int], source: str, flat: list[float]) -> None:
    """Append the payoffs under ``node`` (at ``index`` in the nested lists) to ``flat`` in row-major order,
    checking that every list has the length ``shape`` gives it."""
    depth, where = len(index), _index_path("payoffs", index)
    if depth == len(shape):
        flat.append(_payoff(node, where, shape, source))
        return
    if not isinstance(node, (list, tuple)):
        raise GameFormatError(
            source,
            f"ragged lists: {where} is {_short(node)}, expected a list of length {shape[depth]}",
        )
    if len(node) != shape[depth]:
        raise GameFormatError(
            source,
            f"ragged lists: {where} has length {len(node)}, expected {shape[depth]}",
        )
    for i, child in enumerate(node):
        _collect_payoffs(child, index + (i,), shape, source, flat)


def _payoff(node: Any, where: str, shape: list[int], source: str) -> float:
    """One payoff at ``where``: a finite real number in float64 range (not a list, not a boolean)."""
    if isinstance(node, (list, tuple)):
        raise GameFormatError(
            source, f"ragged lists: {where} is a list, expected a number (shape {shape})"
        )
    if isinstance(node, (bool, np.bool_)):
        raise GameFormatError(
            source, f"non-numeric entry {node!r} at {where} (booleans are not numbers)"
        )
    if not _is_number(node):
        raise GameFormatError(
            source, f"non-numeric entry {_short(node)} ({type(node).__name__}) at {where}"
        )
    try:
        value = float(node)
    except (OverflowError, ValueError):
        raise GameFormatError(source, f"payoff {_short(node)} at {where} is out of float64 range") from None
    if not math.isfinite(value):
        raise GameFormatError(source, f"non-finite payoff {value!r} (NaN/inf) at {where}")
    return value


def game_from_array(array: Any, source: str = "array") -> Tensor:
    """Validate a numpy array or tensor ``[N, A_1..A_N]``; return a float64 CPU tensor."""
    if isinstance(array, Tensor):
        if array.dtype == torch.bool or array.is_complex():
            raise GameFormatError(source, f"payoffs must be real numbers, got dtype {array.dtype}")
        array = array.detach().cpu().to(torch.float64).numpy()
    if not isinstance(array, np.ndarray):
        raise GameFormatError(source, f"expected a numpy array, got {type(array).__name__}")
    kind = array.dtype.kind
    if kind == "b":
        raise GameFormatError(source, "array has boolean dtype; payoffs must be numbers (booleans are not numbers)")
    if kind not in "iuf":
        raise GameFormatError(source, f"array has non-numeric dtype {array.dtype} (need integer or float)")
    _check_shape(tuple(array.shape), source, "array")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(array, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GameFormatError(
            source,
            f"non-finite payoff {array[where]!r} (NaN/inf, or out of float64 range) at index {list(where)}",
        )
    return torch.from_numpy(out.copy())
