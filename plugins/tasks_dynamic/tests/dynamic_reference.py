"""An independent implementation of the published settings and of an affine maximizer read from a mechanism
file: plain Python, state tuples and recursion, no tensors and none of did_dynamic's code. Used to check the
shipped mechanisms and the tensor implementation profile by profile."""

from __future__ import annotations

import json
from pathlib import Path

SENTINEL = 5.0


def children(setting: str, n: int, m: int, state: tuple) -> list[tuple | None]:
    """The state each action leads to (``None``: the episode ends)."""
    if setting.startswith("sales"):
        t = state[0]
        if t == m - 1:
            return [None] * (n + 1)
        return [(t + 1,) + state[1:t + 1] + (a,) + state[t + 2:] for a in range(n + 1)]
    t = state[0]
    if t == m:
        return [None] * n
    return [(t + 1,) + state[1:t] + (a + 1,) + state[t + 1:] for a in range(n)]


def reward(setting: str, types: list, state: tuple, action: int, agent: int) -> float:
    """Agent ``agent`` (0-based)'s reward for ``action`` in ``state``."""
    if setting.startswith("sales"):
        return types[agent] if action == agent + 1 and (agent + 1) not in state[1:] else 0.0
    return -types[agent][state[0] - 1] if action == agent else 0.0


def best_path(setting, n, m, types, weights, boosts, state):
    """(affine welfare, [(state, action), ...]) of the optimum from ``state``; ties to the lowest action."""
    best = None
    for action, child in enumerate(children(setting, n, m, state)):
        here = sum(w * reward(setting, types, state, action, i) for i, w in enumerate(weights)) + boosts[state][action]
        value, path = best_path(setting, n, m, types, weights, boosts, child) if child is not None else (0.0, [])
        if best is None or here + value > best[0] + 1e-9:
            best = (here + value, [(state, action)] + path)
    return best


def makespan(types: list, schedule: list[int]) -> float:
    rem = [0.0] * len(types)
    for task, worker in enumerate(schedule):
        rem = [r - 1.0 if r > 0 else r for r in rem]
        rem[worker] += types[worker][task]
    return max(0.0, max(rem))


def outcome(mechanism: dict, types: list) -> float:
    """The mechanism's objective (revenue, or the makespan) for one type profile."""
    setting, n, m = mechanism["setting"], mechanism["n"], mechanism["m"]
    weights = mechanism["weights"]
    boosts = {tuple(entry["state"]): entry["action_boosts"] for entry in mechanism["boosts"]}
    start = ((0,) if setting.startswith("sales") else (1,)) + (-1,) * m
    welfare, path = best_path(setting, n, m, types, weights, boosts, start)
    if setting.startswith("makespan"):
        return makespan(types, [a for _, a in path])
    revenue = 0.0
    for i in range(n):
        mine = sum(reward(setting, types, s, a, i) for s, a in path)
        other = list(types)
        other[i] = [SENTINEL] * m if setting.startswith("makespan") else 0.0
        counterfactual, _ = best_path(setting, n, m, other, weights, boosts, start)
        revenue += mine + (counterfactual - welfare) / weights[i]
    return revenue


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())
