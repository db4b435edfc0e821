"""Reading a task's instance files (``did design``): JSON objects checked field by field, one-line errors.

Every task that reads an instance file for ``did design`` meets the same
problems (a file that is not JSON, an unknown or missing field, a list of names
with a duplicate, a nested list of the wrong shape or with a non-number in it);
these helpers describe each as one :class:`InstanceError` line naming the field,
so every task's files fail alike. ``description`` and ``notes`` are free text
that any instance file may carry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from did_core.files import MIB, UnreadableFile, clip, read_json_file

__all__ = ["InstanceError", "DOC_KEYS", "INSTANCE_FILE_LIMIT", "read_json", "load_instance", "check_fields", "names",
           "array", "padded"]

#: fields any instance file may carry for people, ignored by the loaders.
DOC_KEYS = frozenset({"description", "notes"})
#: The largest instance file read.
INSTANCE_FILE_LIMIT = 16 * MIB


T = TypeVar("T")


class InstanceError(ValueError):
    """A malformed instance file, described in one line (a ``ValueError``, as ``did design`` expects)."""


def read_json(path: Path) -> Any:
    """The decoded JSON in ``path`` (a regular file of at most :data:`INSTANCE_FILE_LIMIT` bytes)."""
    try:
        return read_json_file(Path(path), INSTANCE_FILE_LIMIT)
    except UnreadableFile as exc:  # also JSON nested too deeply for the parser, or a number too long to convert
        raise InstanceError(f"cannot read {path}: {exc}") from None


def load_instance(path: Path, build: Callable[[Any], T]) -> T:
    """``build`` applied to the JSON in ``path``; its ``InstanceError`` (or subclass) names the file."""
    data = read_json(path)  # its errors name the file already
    try:
        return build(data)
    except InstanceError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def check_fields(data: Any, keys: set[str], required: set[str]) -> dict[str, Any]:
    """``data`` as a JSON object with only ``keys`` (and :data:`DOC_KEYS`) and every ``required`` key."""
    if not isinstance(data, dict):
        raise InstanceError(f"the file must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - keys - DOC_KEYS)
    if unknown:
        raise InstanceError(f"unknown field(s) {', '.join(map(repr, unknown))}; expected "
                            f"{', '.join(sorted(keys))} (and optionally description, notes)")
    missing = sorted(required - set(data))
    if missing:
        raise InstanceError(f"missing field(s) {', '.join(map(repr, missing))}")
    return data


def names(data: Any, field: str, what: str) -> list[str]:
    """A non-empty list of distinct strings (``what``: the kind of name, for the message)."""
    if not isinstance(data, list) or not data or not all(isinstance(x, str) for x in data):
        raise InstanceError(f"'{field}' must be a non-empty list of {what} names (strings)")
    if len(set(data)) != len(data):
        raise InstanceError(f"'{field}' has duplicate names")
    return list(data)


def array(data: Any, field: str, shape: tuple[int, ...]) -> Tensor:
    """The float64 tensor of exactly ``shape`` held by one field of an instance file, e.g.
    ``array(data["payoffs"], "payoffs", (2, 3, 3))``.

    **Arguments:** ``data`` -- the field's *value* (nested lists of finite numbers, as decoded from the
    JSON), not the file's object; ``field`` -- the field's name, used only in messages; ``shape`` -- the
    exact shape required. **Returns:** a float64 tensor of shape ``shape``. A wrong entry raises one
    :class:`InstanceError` line naming the field and the entry, e.g. ``'payoffs[1]' must be a list of 3
    entries (shape [2, 3, 3]), got a list of 2``.
    """

    def check(x: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not _finite(x):
                raise InstanceError(f"'{field}{where}' must be a finite number (float64), "
                                    f"got {clip(json.dumps(x), 40)}")
            return
        if not isinstance(x, list) or len(x) != shape[depth]:
            got = f"a list of {len(x)}" if isinstance(x, list) else clip(json.dumps(x), 40)
            raise InstanceError(f"'{field}{where}' must be a list of {shape[depth]} entries "
                                f"(shape {list(shape)}), got {got}")
        for k, item in enumerate(x):
            check(item, depth + 1, f"{where}[{k}]")

    check(data, 0, "")
    return torch.tensor(data, dtype=torch.float64).reshape(shape)


def _finite(x: int | float) -> bool:
    """Whether ``x`` is a finite float64 (an integer beyond float64's range is not)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def padded(values: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``values`` zero-padded at the end of every axis to ``shape``."""
    out = torch.zeros(shape, dtype=values.dtype)
    out[tuple(slice(0, n) for n in values.shape)] = values
    return out
