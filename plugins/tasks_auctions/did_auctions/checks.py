"""The checks every exchange file goes through: one ``ValueError`` line naming the field that fails."""

from __future__ import annotations

import math
from typing import Any

from did_core.files import shown

__all__ = ["MAX_FILE_BYTES", "MAX_ITEMS", "MAX_BIDDERS", "MAX_OUTCOMES", "check_keys", "count", "number_list"]

#: the largest exchange file read (a menu of MAX_OPTIONS options of a few items fits).
MAX_FILE_BYTES = 32 << 20
#: the most items, bidders and AMA outcomes a file may declare.
MAX_ITEMS = 16
MAX_BIDDERS = 16
MAX_OUTCOMES = 10_000


def check_keys(data: Any, where: str, required: set[str]) -> dict[str, Any]:
    """``data`` as an object with exactly the keys ``required``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object, got {shown(data)}")
    missing, extra = required - data.keys(), data.keys() - required
    if missing:
        raise ValueError(f"{where} lacks {', '.join(sorted(missing))}")
    if extra:
        raise ValueError(f"{where} has unknown keys {', '.join(sorted(extra))}")
    return data


def count(value: Any, where: str, most: int) -> int:
    """``value`` as an integer in ``[1, most]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"{where} must be an integer from 1 to {most}, got {shown(value)}")
    return value


def number_list(value: Any, where: str, length: int) -> list[float]:
    """``value`` as a list of ``length`` finite numbers."""
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"{where} must be a list of {length} numbers, got {shown(value)}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value):
        raise ValueError(f"{where} must hold finite numbers, got {shown(value)}")
    return [float(x) for x in value]
