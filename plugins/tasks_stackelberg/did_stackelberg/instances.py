"""Reading instance files of both tasks: JSON with one-line errors, named actions, joints shown by names.

Both formats (:mod:`did_stackelberg.design_commitment`, :mod:`did_stackelberg.design_matrix`)
are JSON objects; every problem with a file is one :class:`InstanceError` line
naming the field (a ``ValueError``, as ``did design`` expects).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["InstanceError", "read_object", "names", "array", "padded", "joint_lines", "NamedContext"]

#: fields any instance file may carry for people, ignored by the loaders.
DOC_KEYS = {"description", "notes"}


class InstanceError(ValueError):
    """A malformed instance file, described in one line."""


class NamedContext(dict):
    """A context (``dict[str, Tensor]``, a batch of one) that remembers its instance's player and action names."""

    def __init__(self, context: dict[str, Tensor], players: list[str], actions: list[list[str]]) -> None:
        super().__init__(context)
        self.players = players
        self.actions = actions


def read_object(path: Path, keys: set[str], required: set[str]) -> dict[str, Any]:
    """The JSON object in ``path``, with only ``keys`` (and ``description``, ``notes``) and every ``required`` key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InstanceError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InstanceError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise InstanceError(f"{path}: the file must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - keys - DOC_KEYS)
    if unknown:
        raise InstanceError(f"{path}: unknown field(s) {', '.join(map(repr, unknown))}; expected "
                            f"{', '.join(sorted(keys))} (and optionally description, notes)")
    missing = sorted(required - set(data))
    if missing:
        raise InstanceError(f"{path}: missing field(s) {', '.join(map(repr, missing))}")
    return data


def names(data: Any, field: str, what: str) -> list[str]:
    """A non-empty list of distinct strings."""
    if not isinstance(data, list) or not data or not all(isinstance(x, str) for x in data):
        raise InstanceError(f"'{field}' must be a non-empty list of {what} names (strings)")
    if len(set(data)) != len(data):
        raise InstanceError(f"'{field}' has duplicate names")
    return list(data)


def array(data: Any, field: str, shape: tuple[int, ...]) -> Tensor:
    """A float64 tensor of exactly ``shape`` from nested lists of finite numbers."""

    def check(x: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise InstanceError(f"'{field}{where}' must be a finite number, got {json.dumps(x)}")
            return
        if not isinstance(x, list) or len(x) != shape[depth]:
            got = f"a list of {len(x)}" if isinstance(x, list) else json.dumps(x)[:40]
            raise InstanceError(f"'{field}{where}' must be a list of {shape[depth]} entries "
                                f"(shape {list(shape)}), got {got}")
        for k, item in enumerate(x):
            check(item, depth + 1, f"{where}[{k}]")

    check(data, 0, "")
    return torch.tensor(data, dtype=torch.float64).reshape(shape)


def padded(values: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``values`` zero-padded at the end of every axis to ``shape``."""
    out = torch.zeros(shape, dtype=values.dtype)
    out[tuple(slice(0, n) for n in values.shape)] = values
    return out


def joint_lines(players: list[str], actions: Iterable[list[str]], sigma: Tensor) -> list[str]:
    """A joint ``[A_1..A_N]`` as one line per joint action (the last player's action varying fastest)."""
    labels = [", ".join(combo) for combo in itertools.product(*actions)]
    header = ", ".join(players)
    width = max(len(header), *(len(label) for label in labels))
    lines = [f"{header:<{width}}  P"]
    for label, p in zip(labels, sigma.reshape(-1).tolist()):
        lines.append(f"{label:<{width}}  {p:.4f}")
    return lines
