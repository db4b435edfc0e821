"""The type-distribution file ``did design dynamic`` reads: which MDP, and each agent's uniform type range.

    {"setting": "sales-asym", "n": 3, "m": 2, "upper": [1.0, 0.5, 0.25]}

``setting`` (one of :data:`did_dynamic.settings.SETTINGS`), ``n`` and ``m`` pick the MDP; agent ``i``'s types are
uniform on ``[0, upper[i]]`` (sales: its value; scheduling: its disutility of each task; gridworld: its goal's
value, the goal cell uniform as in the setting). Without ``upper`` the setting's own distribution is used.
Anything else (a file over 64 KiB, malformed JSON, an unknown key, a non-finite or non-positive bound) is a
one-line ``ValueError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from did_core.files import UnreadableFile, read_json_file, shown
from did_dynamic.settings import Setting, make_setting

__all__ = ["read_types_file", "parse_types", "TYPES_FILE_LIMIT"]

TYPES_FILE_LIMIT = 64 << 10


def parse_types(data: Any, source: str) -> Setting:
    """The setting a parsed type-distribution file describes."""
    if not isinstance(data, dict) or not {"setting", "n", "m"} <= set(data) <= {"setting", "n", "m", "upper"}:
        raise ValueError(f"{source}: a type-distribution file is an object with setting, n, m and optionally "
                         f"upper (got {shown(sorted(data) if isinstance(data, dict) else data)})")
    upper = data.get("upper")
    if upper is not None:
        if not isinstance(upper, list) or not all(
                isinstance(u, (int, float)) and not isinstance(u, bool) and math.isfinite(u) for u in upper):
            raise ValueError(f"{source}: upper must be a list of finite numbers, got {shown(upper)}")
        upper = tuple(float(u) for u in upper)
    try:
        return make_setting(data["setting"], data["n"], data["m"], upper)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def read_types_file(path: Path) -> Setting:
    """Read and check the type-distribution file at ``path``."""
    source = f"type-distribution file {shown(str(path))}"
    try:
        data = read_json_file(path, TYPES_FILE_LIMIT)
    except UnreadableFile as exc:
        raise UnreadableFile(f"{source}: {exc}") from None
    return parse_types(data, source)
