"""Instance files of both tasks: the core's checked JSON reading, contexts with names, joints shown by names.

Both formats (:mod:`did_stackelberg.design_commitment`, :mod:`did_stackelberg.design_matrix`)
are JSON objects read with :mod:`did_core.instance_files`; every problem with a
file is one :class:`InstanceError` line naming the file and the field.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import Tensor

from did_core.instance_files import InstanceError, array, check_fields, load_instance, names, padded

__all__ = ["InstanceError", "read_object", "names", "array", "padded", "joint_lines", "NamedContext"]


class NamedContext(dict):
    """A context (``dict[str, Tensor]``, a batch of one) that remembers its instance's player and action names."""

    def __init__(self, context: dict[str, Tensor], players: list[str], actions: list[list[str]]) -> None:
        super().__init__(context)
        self.players = players
        self.actions = actions


def read_object(path: Path, keys: set[str], required: set[str]) -> dict[str, Any]:
    """The JSON object in ``path``, with only ``keys`` (and ``description``, ``notes``) and every ``required`` key."""
    return load_instance(path, lambda data: check_fields(data, keys, required))


def joint_lines(players: list[str], actions: Iterable[list[str]], sigma: Tensor) -> list[str]:
    """A joint ``[A_1..A_N]`` as one line per joint action (the last player's action varying fastest)."""
    labels = [", ".join(combo) for combo in itertools.product(*actions)]
    header = ", ".join(players)
    width = max(len(header), *(len(label) for label in labels))
    lines = [f"{header:<{width}}  P"]
    for label, p in zip(labels, sigma.reshape(-1).tolist()):
        lines.append(f"{label:<{width}}  {p:.4f}")
    return lines
