"""Polishing a menu's prices on a finite type set: exact, and never worse.

A menu trained through the relaxed choice prices each option a little below the
values of the types at its margin, and on a finite type set it can stop a whole
grid step below them (its gradient only sees types within the tolerance of
indifference). On a finite set the exact repair is simple: raise option ``l``'s
price by the least slack of the types that take it (their utility for ``l`` less
their best alternative, the null option included). Every taker then still weakly
prefers ``l``, and under the exact choice (ties to the higher price) keeps it or
moves to a dearer option; nobody else is drawn to ``l``. So revenue never
falls. Options whose removal does not lower revenue are dropped (a cheap option
that draws types away from a dearer one). Both steps repeat until neither changes
the menu.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from did_auctions.menu import Menu, revenue, utilities

__all__ = ["polish_prices"]


def polish_prices(menu: Menu, values: Tensor, probabilities: Tensor, rounds: int = 50) -> Menu:
    """``menu`` with prices raised and useless options dropped as in the module docstring, for the types
    ``values [T, k]`` with ``probabilities [T]``; never worth less than ``menu`` on them."""
    for _ in range(rounds):
        raised = _raise_prices(menu, values)
        kept = _drop_options(raised, values, probabilities)
        if kept.options == menu.options and torch.equal(kept.price, menu.price):
            break
        menu = kept
    return menu


def _raise_prices(menu: Menu, values: Tensor) -> Menu:
    price = menu.price.clone()
    for option in range(menu.options):
        current = Menu(menu.alloc, price, menu.valuation, menu.box)
        takers = current.choice(values) == option + 1
        if not bool(takers.any()):
            continue
        utility = utilities(values[takers], menu.alloc, price)  # [T', L + 1]
        own = utility[:, option + 1].clone()
        utility[:, option + 1] = -math.inf
        slack = float((own - utility.max(dim=1).values).min())
        if slack > 0:
            price[option] += slack
    return Menu(menu.alloc, price, menu.valuation, menu.box)


def _drop_options(menu: Menu, values: Tensor, probabilities: Tensor) -> Menu:
    best = revenue(menu, values, probabilities)
    option = 0
    while option < menu.options and menu.options > 1:
        keep = torch.arange(menu.options) != option
        smaller = Menu(menu.alloc[keep], menu.price[keep], menu.valuation, menu.box)
        worth = revenue(smaller, values, probabilities)
        if worth >= best:
            menu, best = smaller, worth
        else:
            option += 1
    return menu
