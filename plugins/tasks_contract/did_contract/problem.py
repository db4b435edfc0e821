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
(within 1e-6). Any problem is one ``ProblemError`` line naming the file and the
field (the core's :class:`did_core.instance_files.InstanceError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from did_core.instance_files import InstanceError, array, check_fields, load_instance, names
from did_core.tasks import Context

__all__ = ["ContractProblem", "ProblemError", "load_problem", "problem_from_dict"]

_KEYS = {"agents", "actions", "outcomes", "values", "costs", "transitions"}

#: A malformed contract-problem file, described in one line.
ProblemError = InstanceError


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


def problem_from_dict(data: Any) -> ContractProblem:
    """Validate a decoded JSON object and build its context (see the module docstring)."""
    check_fields(data, _KEYS, _KEYS)
    agents = names(data["agents"], "agents", "agent")
    n_agents = len(agents)
    if n_agents > 4:
        raise ProblemError(f"at most 4 agents are supported, got {n_agents}")
    if not isinstance(data["actions"], list) or len(data["actions"]) != n_agents:
        raise ProblemError(f"'actions' must hold one list of action names per agent ({n_agents})")
    actions = [names(a, f"actions[{i}]", "action") for i, a in enumerate(data["actions"])]
    outcomes = names(data["outcomes"], "outcomes", "outcome")
    sizes = tuple(len(a) for a in actions)
    m = len(outcomes)
    values = array(data["values"], "values", (m,))
    costs = array(data["costs"], "costs", (n_agents, *sizes))
    transitions = array(data["transitions"], "transitions", (*sizes, m))
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
    return load_instance(path, problem_from_dict)
