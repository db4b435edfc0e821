"""Menus under the exact choice: the known optimal menus reach the known optima, ties go to the higher price,
and the exchange JSON round-trips."""

from __future__ import annotations

import math

import pytest
import torch

from did_auctions.exchange import menu_from_json
from did_auctions.menu import Menu, revenue
from did_auctions.references import menu_reference
from did_auctions.values import Box

UNIT = Box((0.0, 0.0), (1.0, 1.0))


def _menu(rows: list[tuple[list[float], float]], valuation: str, box: Box = UNIT) -> Menu:
    return Menu(torch.tensor([r[0] for r in rows], dtype=torch.float64),
                torch.tensor([r[1] for r in rows], dtype=torch.float64), valuation, box)


def _samples(box: Box, count: int = 400_000) -> torch.Tensor:
    return box.sample(count, torch.Generator().manual_seed(0))


def test_optimal_additive_menu_reaches_0_5491():
    bundle = (4 - math.sqrt(2)) / 3
    menu = _menu([([1, 0], 2 / 3), ([0, 1], 2 / 3), ([1, 1], bundle)], "additive")
    assert revenue(menu, _samples(UNIT)) == pytest.approx(0.5491, abs=0.002)  # SE about 0.0007


def test_optimal_unit_demand_menu_reaches_0_3849():
    price = 1 / math.sqrt(3)
    menu = _menu([([1, 0], price), ([0, 1], price)], "unit_demand")
    assert revenue(menu, _samples(UNIT)) == pytest.approx(2 / (3 * math.sqrt(3)), abs=0.0015)


def test_single_item_posted_price_is_price_times_sale_probability():
    box = Box((0.0,), (1.0,))
    menu = _menu([([1.0], 0.5)], "additive", box)
    assert revenue(menu, _samples(box)) == pytest.approx(0.25, abs=0.0015)


def test_ties_go_to_the_higher_price():
    # value 1: option A (z=1, p=0.5) and option B (z=0.5, p=0) both give utility 0.5; the seller gets 0.5
    box = Box((0.0,), (2.0,))
    menu = _menu([([0.5], 0.0), ([1.0], 0.5)], "additive", box)
    assert menu.payments(torch.tensor([[1.0]], dtype=torch.float64)).item() == 0.5
    # a type indifferent between buying at its value and the null option buys
    menu = _menu([([1.0], 1.0)], "additive", box)
    assert menu.payments(torch.tensor([[1.0]], dtype=torch.float64)).item() == 1.0


def test_unit_demand_allocations_are_checked():
    with pytest.raises(ValueError, match="unit-demand"):
        _menu([([0.7, 0.7], 1.0)], "unit_demand")
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        _menu([([1.5, 0.0], 1.0)], "additive")


def test_exchange_json_round_trips():
    menu = _menu([([1, 0], 0.6), ([0.25, 0.5], 0.3)], "unit_demand", Box((0.5, 1.0), (1.5, 3.0)))
    again = menu_from_json(menu.as_json())
    assert again.as_json() == menu.as_json()
    torch.testing.assert_close(again.alloc, menu.alloc)


def test_three_item_grand_bundle_reference():
    """The 3-item reference of did_auctions.references: the grand bundle at its best price 1.1629."""
    box = Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    menu = _menu([([1, 1, 1], 1.1629)], "additive", box)
    reference = menu_reference("additive", box.low, box.high)
    assert revenue(menu, _samples(box)) == pytest.approx(reference.value, abs=0.002)
