"""The mechanism file: one affine maximizer for one cell, readable without this code.

    {"setting": "sales-sym", "n": 3, "m": 2, "weights": [w_1, ..., w_n],
     "boosts": [{"state": [t, a_1, ..., a_m], "action_boosts": [b_0, ..., b_K]}, ...],
     "objective": value, "samples": S}

States are written as the settings write them (:mod:`did_dynamic.settings`; the grid: ``[x, y]``), every state of
the MDP listed once; ``action_boosts`` has one entry per action. ``objective`` is the exact mean objective
(revenue, or makespan) measured on ``samples`` type profiles. :func:`read_mechanism` refuses anything else in one
line (``ValueError``): a file too large, malformed JSON, a missing or unknown key, a state that is not the
setting's or is listed twice or not at all, a non-finite number, a weight that is not positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from did_core.affine_maximizer import AffineMaximizer
from did_core.files import UnreadableFile, read_json_file, shown
from did_dynamic.evaluation import Measured
from did_dynamic.settings import Setting, make_setting

__all__ = ["ShippedMechanism", "mechanism_json", "read_mechanism", "parse_mechanism", "MAX_BYTES"]

#: The largest mechanism file read (the largest cell's file is about 20 kB).
MAX_BYTES = 4 << 20

_KEYS = {"setting", "n", "m", "weights", "boosts", "objective", "samples"}


@dataclass(frozen=True)
class ShippedMechanism:
    """A mechanism read from a file: its cell, parameters, and the objective and sample count it declares."""

    setting: Setting
    mechanism: AffineMaximizer
    objective: float
    samples: int


def mechanism_json(setting: Setting, mechanism: AffineMaximizer, measured: Measured) -> dict[str, Any]:
    """The file's content for ``mechanism`` on ``setting`` with its measured objective."""
    boosts = mechanism.boosts.detach().double()
    return {
        "setting": setting.name, "n": setting.n, "m": setting.m,
        "weights": [float(w) for w in mechanism.weights.detach()],
        "boosts": [{"state": list(label), "action_boosts": [float(b) for b in boosts[s]]}
                   for s, label in enumerate(setting.mdp.labels)],
        "objective": measured.mean, "samples": measured.samples,
    }


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {shown(value)}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where} must be an integer, got {shown(value)}")
    return value


def parse_mechanism(data: Any, source: str) -> ShippedMechanism:
    """Check a mechanism file's parsed JSON ``data`` (from ``source``, named in errors) and build it."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a mechanism file is a JSON object")
    if set(data) != _KEYS:
        missing, unknown = sorted(_KEYS - set(data)), sorted(set(data) - _KEYS)
        raise ValueError(f"{source}: " + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                                  unknown and f"unknown {', '.join(unknown)}"])))
    if not isinstance(data["setting"], str):
        raise ValueError(f"{source}: setting must be a string")
    setting = make_setting(data["setting"], _integer(data["n"], f"{source}: n"), _integer(data["m"], f"{source}: m"))
    weights = data["weights"]
    if not isinstance(weights, list) or len(weights) != setting.n:
        raise ValueError(f"{source}: weights must be a list of {setting.n} numbers")
    weights = [_number(w, f"{source}: a weight") for w in weights]
    if min(weights) <= 0.0:
        raise ValueError(f"{source}: weights must be positive")
    index = {tuple(label): s for s, label in enumerate(setting.mdp.labels)}
    boosts = torch.full((setting.mdp.num_states, setting.mdp.num_actions), math.nan, dtype=torch.float64)
    entries = data["boosts"]
    if not isinstance(entries, list) or len(entries) != len(index):
        raise ValueError(f"{source}: boosts must list each of the {len(index)} states of {setting.key} once")
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"state", "action_boosts"}:
            raise ValueError(f"{source}: each boosts entry is {{\"state\": [...], \"action_boosts\": [...]}}")
        state = entry["state"]
        key = tuple(state) if isinstance(state, list) and all(type(v) is int for v in state) else None
        if key not in index:
            raise ValueError(f"{source}: {shown(state)} is not a state of {setting.key}")
        row = entry["action_boosts"]
        if not isinstance(row, list) or len(row) != setting.mdp.num_actions:
            raise ValueError(f"{source}: action_boosts of state {shown(state)} must list {setting.mdp.num_actions} numbers")
        if not bool(torch.isnan(boosts[index[key]]).all()):
            raise ValueError(f"{source}: state {shown(state)} is listed twice")
        boosts[index[key]] = torch.tensor([_number(b, f"{source}: a boost") for b in row], dtype=torch.float64)
    samples = _integer(data["samples"], f"{source}: samples")
    if samples < 1:
        raise ValueError(f"{source}: samples must be positive")
    mechanism = AffineMaximizer(torch.tensor(weights, dtype=torch.float64), boosts)
    return ShippedMechanism(setting, mechanism, _number(data["objective"], f"{source}: objective"), samples)


def read_mechanism(path: str | Path) -> ShippedMechanism:
    """Read and check the mechanism file at ``path`` (see :func:`parse_mechanism`)."""
    try:
        data = read_json_file(Path(path), MAX_BYTES)
    except UnreadableFile as exc:
        raise UnreadableFile(f"mechanism file {shown(str(path))}: {exc}") from None
    return parse_mechanism(data, f"mechanism file {shown(str(path))}")
