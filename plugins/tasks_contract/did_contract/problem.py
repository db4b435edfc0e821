"""One contract problem read from a JSON file (e.g. ``examples/christmas_tree.json``).

File format (a JSON object; ``description`` and ``notes`` are free documentation)::

    {
      "agents":      ["Alice", "Bob"],                       # N names
      "actions":     [["help", "don't help"], [...]],        # per agent, its action names
      "outcomes":    ["tree set up", "tree burns down", "no tree"],   # M names
      "values":      [10, 0, 3],                             # v(w), one per outcome
      "costs":       [[[...]], [[...]]],                     # costs[i][a_1]..[a_N] = c_i(a)
      "transitions": [[[p_1..p_M], ...]],                    # transitions[a_1]..[a_N] = P(. | a)
    }

Every number must be finite, transitions non-negative with rows summing to 1
(within 1e-6). Any problem is one ``ProblemError`` line naming the file and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from did_core.tasks import Context

__all__ = ["ContractProblem", "ProblemError", "load_problem", "problem_from_dict"]

_KEYS = {"agents", "actions", "outcomes", "values", "costs", "transitions"}
_DOC_KEYS = {"description", "notes"}


class ProblemError(ValueError):
    """A malformed contract-problem file, described in one line."""


@dataclass
class ContractProblem:
    """A named contract problem and its context (a batch of one, float64, unpadded)."""

    agents: list[str]
    actions: list[list[str]]
    outcomes: list[str]
    context: Context

    @property
    def n_agents(self) -> int:
        return len(self.agents)


def _names(data: Any, field: str, what: str) -> list[str]:
    if not isinstance(data, list) or not data or not all(isinstance(x, str) for x in data):
        raise ProblemError(f"'{field}' must be a non-empty list of {what} names (strings)")
    if len(set(data)) != len(data):
        raise ProblemError(f"'{field}' has duplicate names")
    return list(data)


def _array(data: Any, field: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A float64 tensor of exactly ``shape`` from nested lists, or a ``ProblemError``."""

    def check(x: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ProblemError(f"'{field}{where}' must be a finite number, got {json.dumps(x)}")
            return
        if not isinstance(x, list) or len(x) != shape[depth]:
            got = f"a list of {len(x)}" if isinstance(x, list) else json.dumps(x)[:40]
            raise ProblemError(f"'{field}{where}' must be a list of {shape[depth]} entries "
                               f"(shape {list(shape)}), got {got}")
        for k, item in enumerate(x):
            check(item, depth + 1, f"{where}[{k}]")

    check(data, 0, "")
    return torch.tensor(data, dtype=torch.float64).reshape(shape)


def problem_from_dict(data: Any) -> ContractProblem:
    """Validate a decoded JSON object and build its context (see the module docstring)."""
    if not isinstance(data, dict):
        raise ProblemError(f"the file must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS - _DOC_KEYS)
    if unknown:
        raise ProblemError(f"unknown field(s) {', '.join(map(repr, unknown))}; expected "
                           f"{', '.join(sorted(_KEYS))} (and optionally description, notes)")
    missing = sorted(_KEYS - set(data))
    if missing:
        raise ProblemError(f"missing field(s) {', '.join(map(repr, missing))}")
    agents = _names(data["agents"], "agents", "agent")
    n_agents = len(agents)
    if n_agents > 4:
        raise ProblemError(f"at most 4 agents are supported, got {n_agents}")
    if not isinstance(data["actions"], list) or len(data["actions"]) != n_agents:
        raise ProblemError(f"'actions' must hold one list of action names per agent ({n_agents})")
    actions = [_names(a, f"actions[{i}]", "action") for i, a in enumerate(data["actions"])]
    outcomes = _names(data["outcomes"], "outcomes", "outcome")
    sizes = tuple(len(a) for a in actions)
    m = len(outcomes)
    values = _array(data["values"], "values", (m,))
    costs = _array(data["costs"], "costs", (n_agents, *sizes))
    transitions = _array(data["transitions"], "transitions", (*sizes, m))
    if (transitions < 0).any():
        raise ProblemError("'transitions' must be non-negative probabilities")
    row_sums = transitions.sum(dim=-1)
    bad = (row_sums - 1).abs() > 1e-6
    if bad.any():
        index = [int(i) for i in bad.nonzero()[0]]
        raise ProblemError(f"'transitions{''.join(f'[{i}]' for i in index)}' sums to "
                           f"{float(row_sums[tuple(index)]):.6g}, not 1")
    transitions = transitions / row_sums.unsqueeze(-1)
    a_max = max(sizes)
    padded_costs = torch.zeros(1, n_agents, *[a_max] * n_agents, dtype=torch.float64)
    padded_costs[(slice(None), slice(None), *[slice(0, s) for s in sizes])] = costs
    padded_transitions = torch.zeros(1, *[a_max] * n_agents, m, dtype=torch.float64)
    padded_transitions[(slice(None), *[slice(0, s) for s in sizes])] = transitions
    mask = torch.arange(a_max).view(1, 1, -1) < torch.tensor(sizes).view(1, -1, 1)
    context = {
        "costs": padded_costs,
        "transitions": padded_transitions,
        "values": values.unsqueeze(0),
        "mask": mask,
        "outcome_mask": torch.ones(1, m, dtype=torch.bool),
    }
    return ContractProblem(agents, actions, outcomes, context)


def load_problem(path: Path) -> ContractProblem:
    """Read and validate a contract-problem JSON file; any problem is one ``ProblemError`` line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProblemError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProblemError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    try:
        return problem_from_dict(data)
    except ProblemError as exc:
        raise ProblemError(f"{path}: {exc}") from None
