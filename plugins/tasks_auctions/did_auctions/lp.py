"""The LP reference: the revenue-optimal mechanism for one bidder on a finite type set.

For types ``v_t`` (``t = 1..T``) with probabilities ``q_t``, the variables are each type's
allocation ``z_t [k]`` and payment ``p_t``; the program (automated mechanism design as a
linear program) is

    maximise   sum_t q_t p_t
    subject to v_t . z_t - p_t >= 0                          (IR, every t)
               v_t . z_t - p_t >= v_t . z_s - p_s            (IC, every t != s)
               0 <= z_t <= 1;  unit demand also sum_j z_tj <= 1,

solved by scipy's HiGHS. It is exact for that finite set, so a learned menu evaluated
on the same set is held against it. The optimum is itself a menu (the distinct
``(z_t, p_t)``), which :func:`lp_menu` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse
import torch
from torch import Tensor

from did_auctions.menu import Menu
from did_auctions.values import Box

__all__ = ["LpResult", "solve_lp", "lp_menu", "MAX_LP_TYPES"]

#: the most types the LP accepts: T (T - 1) IC rows, each with 2k + 2 entries (3000 types: 9e6 rows).
MAX_LP_TYPES = 3000


@dataclass(frozen=True)
class LpResult:
    """The LP's optimum: ``revenue``, ``alloc [T, k]``, ``price [T]``, and the solver's status message."""

    revenue: float
    alloc: Tensor
    price: Tensor
    message: str


def _constraints(values: np.ndarray, unit_demand: bool) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """``A_ub x <= b_ub`` over ``x = (z [T*k] row-major, p [T])`` for IR, IC and (unit demand) the sum."""
    count, items = values.shape
    zi = np.arange(count * items).reshape(count, items)  # column of z_t[j]
    pi = count * items + np.arange(count)  # column of p_t
    t, s = np.nonzero(~np.eye(count, dtype=bool))  # every ordered pair t != s
    pairs = len(t)
    # IC row (t, s): -v_t . z_t + p_t + v_t . z_s - p_s <= 0
    ic_rows = np.repeat(np.arange(pairs), 2 * items + 2)
    ic_cols = np.concatenate([zi[t], zi[s], pi[t, None], pi[s, None]], axis=1).ravel()
    ic_vals = np.concatenate([-values[t], values[t], np.ones((pairs, 1)), -np.ones((pairs, 1))], axis=1).ravel()
    # IR row t: -v_t . z_t + p_t <= 0
    ir_rows = pairs + np.repeat(np.arange(count), items + 1)
    ir_cols = np.concatenate([zi, pi[:, None]], axis=1).ravel()
    ir_vals = np.concatenate([-values, np.ones((count, 1))], axis=1).ravel()
    rows, cols, vals = [ic_rows, ir_rows], [ic_cols, ir_cols], [ic_vals, ir_vals]
    total = pairs + count
    if unit_demand:
        rows.append(total + np.repeat(np.arange(count), items))
        cols.append(zi.ravel())
        vals.append(np.ones(count * items))
        total += count
    matrix = scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                     shape=(total, count * (items + 1)))
    bound = np.zeros(total)
    if unit_demand:
        bound[pairs + count:] = 1.0
    return matrix, bound


def solve_lp(values: Tensor, probabilities: Tensor, valuation: str) -> LpResult:
    """The optimal mechanism for types ``values [T, k]`` with ``probabilities [T]`` (see the module docstring).

    Raises ``ValueError`` for more than :data:`MAX_LP_TYPES` types or when HiGHS does not reach an optimum."""
    count, items = values.shape
    if count > MAX_LP_TYPES:
        raise ValueError(f"the LP takes at most {MAX_LP_TYPES} types ({count} given: {count * (count - 1)} IC "
                         f"constraints); use fewer grid points")
    v = values.detach().to(torch.float64).numpy()
    matrix, bound = _constraints(v, valuation == "unit_demand")
    cost = np.concatenate([np.zeros(count * items), -probabilities.detach().to(torch.float64).numpy()])
    bounds = [(0.0, 1.0)] * (count * items) + [(None, None)] * count
    result = scipy.optimize.linprog(cost, A_ub=matrix, b_ub=bound, bounds=bounds, method="highs")
    if result.status != 0:
        raise ValueError(f"the LP was not solved: {result.message}")
    x = torch.from_numpy(result.x)
    return LpResult(-float(result.fun), x[:count * items].reshape(count, items), x[count * items:], result.message)


def lp_menu(result: LpResult, valuation: str, box: Box, decimals: int = 9) -> Menu:
    """The LP's mechanism as a menu: its distinct ``(z_t, p_t)`` options (rounded to ``decimals``), the null
    option dropped (a type on it is served by the menu's own null option)."""
    rows = torch.cat([result.alloc, result.price[:, None]], dim=1)
    rows = torch.unique(torch.round(rows, decimals=decimals), dim=0)
    rows = rows[(rows[:, :-1].abs().sum(dim=1) > 0) | (rows[:, -1].abs() > 0)]
    alloc = rows[:, :-1].clamp(0.0, 1.0)
    if valuation == "unit_demand":
        alloc = alloc / alloc.sum(dim=1, keepdim=True).clamp_min(1.0)
    return Menu(alloc, rows[:, -1], valuation, box)
