"""The LP polish on a finite type set: never below the menu or its price polish, never above the LP, the
menu it returns is scored by the exact choice alone (so IC and IR hold exactly), and on a grid where a
learned menu stalls a step below the optimal prices it reaches the LP."""

from __future__ import annotations

import pytest
import torch

from did_auctions.lp import solve_lp
from did_auctions.lp_polish import lp_polish
from did_auctions.menu import Menu, revenue, utilities
from did_auctions.polish import polish_prices
from did_auctions.values import Box, grid


def _random_menu(seed: int, valuation: str, box: Box, options: int = 5) -> Menu:
    generator = torch.Generator().manual_seed(seed)
    alloc = torch.rand(options, box.items, generator=generator, dtype=torch.float64)
    if valuation == "unit_demand":
        alloc = alloc / alloc.sum(1, keepdim=True).clamp_min(1.0)
    return Menu(alloc, torch.rand(options, generator=generator, dtype=torch.float64) * 1.5, valuation, box)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("allocations", [False, True])
@pytest.mark.parametrize("valuation", ["additive", "unit_demand"])
def test_never_below_the_menu_or_its_price_polish_never_above_the_lp(seed, allocations, valuation):
    box = Box((0.0, 0.0), (1.0, 1.0))
    types, probabilities = grid(box, 5)
    menu = _random_menu(seed, valuation, box)
    polished = lp_polish(menu, types, probabilities, allocations=allocations)
    worth = revenue(polished, types, probabilities)
    assert worth >= revenue(menu, types, probabilities) - 1e-12
    assert worth >= revenue(polish_prices(menu, types, probabilities), types, probabilities) - 1e-12
    assert worth <= solve_lp(types, probabilities, valuation).revenue + 1e-7
    # a valid menu (allocations in [0, 1], unit demand summing to at most 1) whose revenue is the exact choice's:
    # every type pays the price of an option of highest utility, at least 0 (IC and IR by construction)
    Menu(polished.alloc, polished.price, valuation, box)
    utility = utilities(types, polished.alloc, polished.price)
    chosen = polished.choice(types)
    assert bool((utility.gather(1, chosen[:, None]).squeeze(1) >= utility.max(1).values - 1e-9).all())
    assert bool((utility.gather(1, chosen[:, None]) >= -1e-9).all())


def _best_deterministic(types, probabilities, box):
    """Brute force over the symmetric deterministic menus (each item at ``a``, the bundle at ``b``), the
    prices on the values' breakpoints."""
    alloc = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    singles = torch.unique(types[:, 0])
    bundles = torch.unique(types.sum(1))
    return max(revenue(Menu(alloc, torch.tensor([a, a, b], dtype=torch.float64), "additive", box), types,
                       probabilities) for a in singles for b in bundles if b >= a)


def test_a_stalled_menu_reaches_the_brute_force_and_the_lp():
    """Items priced above the bundle, the bundle a step below its optimum (the configuration gradient training
    stalls in, docs/auctions.md): the price polish keeps the bundle alone; the LP polish finds the best
    item and bundle prices, which on this grid are the LP's optimum."""
    box = Box((0.0, 0.0), (1.0, 1.0))
    types, probabilities = grid(box, 8)
    alloc = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    menu = Menu(alloc, torch.tensor([0.9, 0.9, 0.7], dtype=torch.float64), "additive", box)
    lp = solve_lp(types, probabilities, "additive").revenue
    brute = _best_deterministic(types, probabilities, box)
    before = revenue(polish_prices(menu, types, probabilities), types, probabilities)
    after = revenue(lp_polish(menu, types, probabilities), types, probabilities)
    assert before < 0.99 * lp
    assert after >= brute - 1e-9
    assert after == pytest.approx(lp, abs=1e-7)


def test_prices_only_keeps_the_allocations():
    box = Box((0.0, 0.0), (1.0, 1.0))
    types, probabilities = grid(box, 6)
    menu = _random_menu(3, "additive", box)
    polished = lp_polish(menu, types, probabilities, allocations=False)
    rows = {tuple(z.tolist()) for z in menu.alloc}
    assert all(tuple(z.tolist()) in rows for z in polished.alloc)
