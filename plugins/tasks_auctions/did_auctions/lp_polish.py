"""Polishing a menu on a finite type set by line searches and a linear program: exact, never worse.

The price polish (:mod:`did_auctions.polish`) only raises one price at a time. A
menu trained on a grid can stall where several prices must move together, some
down (on the 20-point additive grid: item options priced above the bundle, so
nobody takes them, and the bundle a grid step below its optimum). Two exact moves
fix that, repeated in rounds until a round gains nothing:

* **line search**, each option ``l`` in turn: as a function of ``p_l`` alone the
  revenue changes only at the breakpoints ``b_t = v_t . z_l - max_{j != l} u_t(j)``
  (type ``t`` indifferent; ``j`` over the other options and the null one), and
  between two breakpoints it rises with ``p_l``; so the best ``p_l`` is one of the
  ``T`` breakpoints, each scored under the exact choice.
* **fixed-assignment LP**: with the option ``a_t`` each type takes held fixed,
  a type's utility ``v_t . z_l - p_l`` is linear in the menu, so re-optimising all
  allocations ``z [L, k]`` and prices ``p [L]`` together (``allocations=False``:
  the prices only) is the linear program

      maximise   sum_t q_t p_{a_t}
      subject to v_t . z_{a_t} - p_{a_t} >= v_t . z_l - p_l    (every t, every option l != a_t)
                 v_t . z_{a_t} - p_{a_t} >= 0                  (every t with a_t != 0: the null option)
                 0 <= z <= 1;  unit demand also sum_j z_lj <= 1,

  ``T L`` rows over ``L (k + 1)`` columns (400 types x 3 taken options: 1200 x 9),
  scipy's HiGHS, over the options some type takes (the others come back priced
  above every breakpoint, for a later line search to lower). The current menu
  is feasible, so the optimum is worth at least as much under that assignment.

Every candidate is scored under the exact choice (ties to the higher price; a
type the LP left at a tie may move to a dearer option) and kept only if its
revenue is strictly higher, so revenue never falls, and the menu returned is an
ordinary menu: IC and IR hold exactly. The whole runs from the menu and from its
price polish, keeping the better; options that do not pay are dropped at the
end. It is the LP reference (:mod:`did_auctions.lp`) with the types sharing an
option forced to share it, so it never exceeds the reference.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import scipy.sparse
import torch
from torch import Tensor

from did_auctions.menu import Menu, revenue, utilities
from did_auctions.polish import polish_prices

__all__ = ["lp_polish"]


def lp_polish(menu: Menu, values: Tensor, probabilities: Tensor, allocations: bool = True,
              rounds: int = 50) -> Menu:
    """``menu`` improved as in the module docstring for types ``values [T, k]`` with ``probabilities [T]``
    (``allocations=False``: the LP moves prices only), from ``menu`` itself and from its price polish
    (:func:`did_auctions.polish.polish_prices`), whichever ends higher: never worth less than either."""
    ends = [_improve(start, values, probabilities, allocations, rounds)
            for start in (menu, polish_prices(menu, values, probabilities))]
    return max(ends, key=lambda m: revenue(m, values, probabilities))


def _improve(menu: Menu, values: Tensor, probabilities: Tensor, allocations: bool, rounds: int) -> Menu:
    """Line search and fixed-assignment LP in rounds until a round gains nothing; the options that do not pay
    dropped at the end."""
    best, worth = menu, revenue(menu, values, probabilities)
    for _ in range(rounds):
        candidate = _line_search(best, values, probabilities)
        solved = _solve_keeping(candidate, values, probabilities, allocations)
        if solved is not None and revenue(solved, values, probabilities) > revenue(candidate, values, probabilities):
            candidate = solved
        gained = revenue(candidate, values, probabilities)
        if gained <= worth:
            break
        best, worth = candidate, gained
    polished = polish_prices(best, values, probabilities)  # also drops the options that do not pay
    return polished if revenue(polished, values, probabilities) >= worth else _taken(best, values)


def _breakpoints(menu: Menu, values: Tensor, option: int) -> Tensor:
    """``[T]``: the price of ``option`` at which each type is indifferent between it and its best alternative
    (the null option included); the revenue, as a function of that one price, changes only there."""
    utility = utilities(values, menu.alloc, menu.price)  # [T, L + 1]
    own = utility[:, option + 1] + menu.price[option]  # v_t . z_l
    utility[:, option + 1] = -math.inf
    return own - utility.max(dim=1).values


def _line_search(menu: Menu, values: Tensor, probabilities: Tensor) -> Menu:
    """Each option's price in turn set to the breakpoint of highest revenue (kept when none is higher)."""
    worth = revenue(menu, values, probabilities)
    for option in range(menu.options):
        for price in torch.unique(_breakpoints(menu, values, option)):
            moved = menu.price.clone()
            moved[option] = price
            trial = Menu(menu.alloc, moved, menu.valuation, menu.box)
            gained = revenue(trial, values, probabilities)
            if gained > worth:
                menu, worth = trial, gained
    return menu


def _taken(menu: Menu, values: Tensor) -> Menu:
    """``menu`` without the options no type takes (every type's choice, ties included, is unchanged)."""
    used = torch.zeros(menu.options + 1, dtype=torch.bool)
    used[menu.choice(values)] = True
    keep = used[1:]
    if not bool(keep.any()):
        return menu
    return Menu(menu.alloc[keep], menu.price[keep], menu.valuation, menu.box)


def _solve_keeping(menu: Menu, values: Tensor, probabilities: Tensor, allocations: bool) -> Menu | None:
    """The fixed-assignment LP over the options some type takes; the others come back afterwards (for the
    line search to lower), each priced above every type's breakpoint so that nobody takes it."""
    used = torch.zeros(menu.options + 1, dtype=torch.bool)
    used[menu.choice(values)] = True
    taken = used[1:]
    if not bool(taken.any()):
        return None
    solved = _solve(Menu(menu.alloc[taken], menu.price[taken], menu.valuation, menu.box), values, probabilities,
                    allocations)
    if solved is None or bool(taken.all()):
        return solved
    margin = 1e-6 * menu.box.scale(menu.valuation)
    alloc, price = solved.alloc, solved.price
    for z, p in zip(menu.alloc[~taken], menu.price[~taken]):
        alloc, price = torch.cat([alloc, z[None]]), torch.cat([price, p[None]])
        out = Menu(alloc, price, menu.valuation, menu.box)
        price[-1] = torch.maximum(p, _breakpoints(out, values, out.options - 1).max() + margin)
    return Menu(alloc, price, menu.valuation, menu.box)


def _solve(menu: Menu, values: Tensor, probabilities: Tensor, allocations: bool) -> Menu | None:
    """The fixed-assignment LP's optimal menu, or ``None`` when HiGHS reaches no optimum."""
    options, items = menu.alloc.shape
    if values.shape[0] == 0:
        return None
    v = values.detach().to(torch.float64).numpy()
    q = probabilities.detach().to(torch.float64).numpy()
    z0 = menu.alloc.detach().to(torch.float64).numpy()
    assigned = menu.choice(values).numpy()  # [T], 0: the null option
    # one row per (type t, alternative l): u_t(l) - u_t(a_t) <= 0, over the alternatives l = 0..L, l != a_t
    t, alt = np.nonzero(np.arange(options + 1)[None, :] != assigned[:, None])
    own = assigned[t]
    rows = np.arange(len(t))
    zcols = np.arange(options * items).reshape(options, items)
    pcol = (options * items if allocations else 0) + np.arange(options)
    parts_r, parts_c, parts_v = [], [], []
    constant = np.zeros(len(t))  # with fixed allocations, v_t . z terms move to the right-hand side

    def add(mask: np.ndarray, option: np.ndarray, sign: float) -> None:
        """``sign * u_t(option)`` for the rows in ``mask`` (option >= 1: ``v_t . z - p``)."""
        r, o, tt = rows[mask], option[mask] - 1, t[mask]
        parts_r.append(r)
        parts_c.append(pcol[o])
        parts_v.append(np.full(len(r), -sign))
        if allocations:
            parts_r.append(np.repeat(r, items))
            parts_c.append(zcols[o].ravel())
            parts_v.append((sign * v[tt]).ravel())
        else:
            constant[r] += sign * np.einsum("rk,rk->r", v[tt], z0[o])

    add(alt > 0, alt, 1.0)
    add(own > 0, own, -1.0)
    columns = len(pcol) + (options * items if allocations else 0)
    matrix = scipy.sparse.csr_matrix((np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c))),
                                     shape=(len(t), columns))
    bound = -constant
    if allocations and menu.valuation == "unit_demand":
        unit = scipy.sparse.csr_matrix((np.ones(options * items), (np.repeat(np.arange(options), items),
                                                                  zcols.ravel())), shape=(options, columns))
        matrix, bound = scipy.sparse.vstack([matrix, unit]).tocsr(), np.concatenate([bound, np.ones(options)])
    cost = np.zeros(columns)
    paying = assigned > 0
    np.add.at(cost, pcol[assigned[paying] - 1], -q[paying])
    bounds = ([(0.0, 1.0)] * (options * items) if allocations else []) + [(None, None)] * options
    result = scipy.optimize.linprog(cost, A_ub=matrix, b_ub=bound, bounds=bounds, method="highs")
    if result.status != 0:
        return None
    x = torch.from_numpy(result.x)
    alloc = x[:options * items].reshape(options, items).clamp(0.0, 1.0) if allocations else menu.alloc
    if allocations and menu.valuation == "unit_demand":
        alloc = alloc / alloc.sum(dim=1, keepdim=True).clamp_min(1.0)
    return Menu(alloc, x[len(x) - options:], menu.valuation, menu.box)
