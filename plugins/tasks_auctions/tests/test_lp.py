"""The LP reference against independent truth: one item (the optimum is a posted price, found by brute force),
two items (every deterministic menu, by brute force, is at most the LP; the LP's mechanism is checked IC and IR
pair by pair) and the LP's mechanism as a menu (worth the LP on its type set)."""

from __future__ import annotations

import itertools

import pytest
import torch

from did_auctions.lp import solve_lp, lp_menu
from did_auctions.menu import Menu, revenue
from did_auctions.values import Box, grid


def _random_types(count: int, items: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 6, (count, items), generator=generator).to(torch.float64) / 5
    probabilities = torch.rand(count, generator=generator, dtype=torch.float64) + 0.1
    return values, probabilities / probabilities.sum()


@pytest.mark.parametrize("seed", range(4))
def test_one_item_lp_is_the_best_posted_price(seed):
    values, probabilities = _random_types(7, 1, seed)
    best = max(float(p * probabilities[values[:, 0] >= p].sum()) for p in values[:, 0])
    assert solve_lp(values, probabilities, "additive").revenue == pytest.approx(best, abs=1e-8)


def _check_ic_ir(values: torch.Tensor, alloc: torch.Tensor, price: torch.Tensor, tol: float = 1e-7) -> None:
    own = (values * alloc).sum(1) - price
    assert torch.all(own >= -tol)
    for t, s in itertools.product(range(len(values)), repeat=2):
        assert own[t] >= float(values[t] @ alloc[s] - price[s]) - tol


@pytest.mark.parametrize("valuation", ["additive", "unit_demand"])
@pytest.mark.parametrize("seed", range(3))
def test_two_item_lp_beats_every_deterministic_menu_and_is_ic(valuation, seed):
    values, probabilities = _random_types(6, 2, seed)
    result = solve_lp(values, probabilities, valuation)
    _check_ic_ir(values, result.alloc, result.price)
    if valuation == "unit_demand":
        assert torch.all(result.alloc.sum(1) <= 1 + 1e-9)
    prices = sorted({0.0, *values.flatten().tolist(), *(values.sum(1)).tolist()})
    box = Box((0.0, 0.0), (1.0, 1.0))
    bundles = [[1.0, 0.0], [0.0, 1.0]] + ([[1.0, 1.0]] if valuation == "additive" else [])
    best = 0.0
    for chosen in itertools.product(prices, repeat=len(bundles)):
        menu = Menu(torch.tensor(bundles, dtype=torch.float64), torch.tensor(chosen, dtype=torch.float64),
                    valuation, box)
        best = max(best, revenue(menu, values, probabilities))
    assert result.revenue >= best - 1e-9
    assert revenue(lp_menu(result, valuation, box), values, probabilities) == pytest.approx(result.revenue, abs=1e-6)


def test_grid_lp_of_the_uniform_square_is_the_known_structure():
    box = Box((0.0, 0.0), (1.0, 1.0))
    types, probabilities = grid(box, 5)
    result = solve_lp(types, probabilities, "additive")
    menu = lp_menu(result, "additive", box)
    assert revenue(menu, types, probabilities) == pytest.approx(result.revenue, abs=1e-7)
    # a menu on the grid never beats the LP, the optimal continuous menu included
    continuous = Menu(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64),
                      torch.tensor([2 / 3, 2 / 3, 0.8619], dtype=torch.float64), "additive", box)
    assert revenue(continuous, types, probabilities) <= result.revenue + 1e-9
