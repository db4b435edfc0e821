"""Polishing on a finite type set never lowers revenue, and repairs a price left below the margin."""

from __future__ import annotations

import pytest
import torch

from did_auctions.menu import Menu, revenue
from did_auctions.polish import polish_prices
from did_auctions.values import Box, grid


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("valuation", ["additive", "unit_demand"])
def test_polish_never_lowers_revenue(seed, valuation):
    generator = torch.Generator().manual_seed(seed)
    box = Box((0.0, 0.0), (1.0, 1.0))
    types, probabilities = grid(box, 6)
    alloc = torch.rand(5, 2, generator=generator, dtype=torch.float64)
    if valuation == "unit_demand":
        alloc = alloc / alloc.sum(1, keepdim=True).clamp_min(1.0)
    menu = Menu(alloc, torch.rand(5, generator=generator, dtype=torch.float64) * 1.5, valuation, box)
    polished = polish_prices(menu, types, probabilities)
    assert revenue(polished, types, probabilities) >= revenue(menu, types, probabilities) - 1e-12


def test_a_price_below_the_margin_rises_to_it():
    box = Box((0.0,), (1.0,))
    types, probabilities = grid(box, 4)  # values 0.125, 0.375, 0.625, 0.875
    menu = Menu(torch.ones(1, 1, dtype=torch.float64), torch.tensor([0.6], dtype=torch.float64), "additive", box)
    polished = polish_prices(menu, types, probabilities)
    assert polished.price.item() == pytest.approx(0.625)
    assert revenue(polished, types, probabilities) == pytest.approx(0.625 / 2)
