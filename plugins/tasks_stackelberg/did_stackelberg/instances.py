"""Instance files of both tasks: the core's checked JSON reading, one object with known keys.

Both formats (:mod:`did_stackelberg.design_commitment`, :mod:`did_stackelberg.design_matrix`)
are JSON objects read with :mod:`did_core.instance_files`; every problem with a
file is one :class:`InstanceError` line naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from did_core.instance_files import InstanceError, array, check_fields, load_instance, names, padded

__all__ = ["InstanceError", "read_object", "names", "array", "padded"]


def read_object(path: Path, keys: set[str], required: set[str]) -> dict[str, Any]:
    """The JSON object in ``path``, with only ``keys`` (and ``description``, ``notes``) and every ``required`` key."""
    return load_instance(path, lambda data: check_fields(data, keys, required))
