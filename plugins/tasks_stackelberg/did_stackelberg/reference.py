"""Exact references for the commitment task, independent of DID's equilibrium blocks.

* :func:`strong_stackelberg` -- the strong Stackelberg value by the multiple-LP
  method (Conitzer and Sandholm 2006): one LP per follower (joint) action ``f``,
  maximising the leader's utility over mixed commitments ``x`` under which ``f``
  is a best response (for several followers: a pure Nash equilibrium of the
  followers' induced game, the optimistic leader-follower value of Basilico et
  al. 2017 restricted to pure follower equilibria), solved with scipy's HiGHS;
  the best feasible LP is the answer.
* :func:`me_best_response` -- the max-entropy eps-best response of one follower
  with payoffs ``u``: the eps-ME CCE of a one-player game is ``softmax(beta u)``
  with the smallest ``beta >= 0`` whose expected regret ``max u - E u`` is at
  most ``eps`` (the KKT conditions of the max-entropy program), found here by
  bisection on ``beta`` -- no equilibrium block involved.
* :func:`edge_search` -- the best leader value against that follower on one edge
  ``x = p e_i + (1 - p) e_j`` of the leader's simplex: a grid over ``p`` refined
  around its best point (the 1-D search behind the game-2 targets of the README).

Arrays are numpy or torch, one context, unpadded: leader payoffs ``[A_L, A_1..A_N]``,
follower payoffs ``[N, A_L, A_1..A_N]`` (axis 0 of each slice: the leader's action).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["StackelbergSolution", "strong_stackelberg", "me_best_response", "edge_values", "edge_search"]


@dataclass(frozen=True)
class StackelbergSolution:
    """The leader's optimal commitment ``strategy [A_L]``, its ``value``, and the followers' induced ``response``
    (a joint action, one index per follower); ``value`` is ``nan`` when no LP is feasible."""

    value: float
    strategy: np.ndarray
    response: tuple[int, ...]


def strong_stackelberg(leader: np.ndarray, followers: np.ndarray, tol: float = 0.0) -> StackelbergSolution:
    """The strong Stackelberg commitment by multiple LPs (see the module docstring).

    ``leader [A_L, A_1..A_N]``, ``followers [N, A_L, A_1..A_N]``; ``tol`` relaxes
    each best-response constraint (``gain <= tol``).
    """
    from scipy.optimize import linprog

    leader, followers = np.asarray(leader, dtype=float), np.asarray(followers, dtype=float)
    n_leader, sizes = leader.shape[0], leader.shape[1:]
    best = StackelbergSolution(float("nan"), np.full(n_leader, np.nan), ())
    for profile in itertools.product(*(range(n) for n in sizes)):
        rows = []
        for i, own in enumerate(profile):
            for d in range(sizes[i]):
                if d != own:
                    deviation = profile[:i] + (d,) + profile[i + 1:]
                    rows.append(followers[(i, slice(None), *deviation)] - followers[(i, slice(None), *profile)])
        a_ub = np.array(rows) if rows else None
        b_ub = np.full(len(rows), tol) if rows else None
        result = linprog(-leader[(slice(None), *profile)], A_ub=a_ub, b_ub=b_ub, A_eq=np.ones((1, n_leader)),
                         b_eq=[1.0], bounds=(0, None), method="highs")
        if result.status == 0 and not (-result.fun <= best.value):
            best = StackelbergSolution(float(-result.fun), np.clip(result.x, 0, None), tuple(profile))
    return best


def me_best_response(u: Tensor, eps: float, iterations: int = 200) -> Tensor:
    """Max-entropy eps-best responses ``[P, A]`` to payoffs ``u [P, A]`` (one follower, ``P`` situations).

    ``softmax(beta u)`` with the smallest ``beta >= 0`` such that ``max u - E u <= eps``;
    ``beta`` by bisection (the regret decreases in ``beta``).
    """
    u = torch.as_tensor(u, dtype=torch.float64)
    top = u.amax(dim=1)

    def regret(beta: Tensor) -> Tensor:
        return top - (torch.softmax(beta.unsqueeze(1) * u, dim=1) * u).sum(dim=1)

    low, high = torch.zeros_like(top), torch.ones_like(top)
    while bool((regret(high) > eps).any()):
        high = torch.where(regret(high) > eps, 2 * high, high)
    for _ in range(iterations):
        mid = (low + high) / 2
        ok = regret(mid) <= eps
        high, low = torch.where(ok, mid, high), torch.where(ok, low, mid)
    beta = torch.where(regret(torch.zeros_like(top)) <= eps, torch.zeros_like(top), high)
    return torch.softmax(beta.unsqueeze(1) * u, dim=1)


def edge_values(leader: Tensor, follower: Tensor, i: int, j: int, p: Tensor, eps: float) -> Tensor:
    """Leader values ``[P]`` of ``x = p e_i + (1 - p) e_j`` against a max-entropy eps-best-responding follower.

    ``leader, follower [A_L, A_F]`` (one follower), ``p [P]`` in ``[0, 1]``.
    """
    leader = torch.as_tensor(leader, dtype=torch.float64)
    follower = torch.as_tensor(follower, dtype=torch.float64)
    p = torch.as_tensor(p, dtype=torch.float64)
    x = torch.zeros(p.shape[0], leader.shape[0], dtype=torch.float64)
    x[:, i], x[:, j] = p, 1 - p
    response = me_best_response(x @ follower, eps)
    return ((x @ leader) * response).sum(dim=1)


def edge_search(leader: Tensor, follower: Tensor, i: int, j: int, eps: float, points: int = 2001,
                rounds: int = 4) -> tuple[float, float]:
    """``(p, value)``: the best point of :func:`edge_values` on the edge ``(i, j)``.

    A grid of ``points`` values of ``p`` on ``[0, 1]``, then ``rounds`` times a grid
    of as many points over the two cells around the best one (the value is
    continuous in ``p``, so the resolution after ``r`` rounds is ``(2 / points)^r``).
    """
    low, high = 0.0, 1.0
    best_p, best_v = 0.0, -float("inf")
    for _ in range(rounds + 1):
        p = torch.linspace(low, high, points, dtype=torch.float64)
        values = edge_values(leader, follower, i, j, p, eps)
        k = int(values.argmax())
        if float(values[k]) > best_v:
            best_p, best_v = float(p[k]), float(values[k])
        step = (high - low) / (points - 1)
        low, high = max(0.0, best_p - step), min(1.0, best_p + step)
    return best_p, best_v
