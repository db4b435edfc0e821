"""The exchange files evaluated by an independent implementation: plain numpy, reading only the JSON (no
code of the plugin), on samples of its own, agrees with the plugin's exact evaluation. Run over every
shipped file and over the examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from did_auctions.exchange import read_mechanism
from did_auctions.menu import Menu

SHIPPED = Path(__file__).resolve().parents[1] / "did_auctions" / "shipped"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "auctions"
FILES = sorted(SHIPPED.glob("*.json")) + sorted(EXAMPLES.glob("*_menu.json")) + sorted(EXAMPLES.glob("*_ama.json"))
COUNT = 5_000


def numpy_menu_revenue(data: dict, values: np.ndarray) -> float:
    """A menu: the buyer's best option by utility, ties to the higher price; the mean price paid."""
    alloc = np.array([[0.0] * data["items"]] + [o["alloc"] for o in data["options"]])
    price = np.array([0.0] + [o["price"] for o in data["options"]])
    utility = values @ alloc.T - price
    best = utility.max(axis=1, keepdims=True)
    scale = sum(data["distribution"]["high"]) if data["valuation"] == "additive" else max(data["distribution"]["high"])
    tied = utility >= best - 1e-9 * scale
    return float(np.where(tied, price, -np.inf).max(axis=1).mean())


def numpy_ama_revenue(data: dict, values: np.ndarray) -> float:
    """An affine maximizer: the outcome of highest affine welfare (ties to the first), each bidder paying
    (the others' best affine welfare - theirs at the chosen outcome) / its weight."""
    w = np.array(data["weights"])
    alloc = np.array([o["alloc"] for o in data["outcomes"]])  # [O, n, k]
    boost = np.array([o["boost"] for o in data["outcomes"]])
    worth = np.einsum("bnk,onk->bon", values, alloc)  # [B, O, n]
    score = (worth * w).sum(-1) + boost  # [B, O]
    chosen = score.argmax(axis=1)
    total = np.zeros(len(values))
    for i in range(len(w)):
        others = score - w[i] * worth[:, :, i]
        total += (others.max(axis=1) - others[np.arange(len(values)), chosen]) / w[i]
    return float(total.mean())


def _sample(data: dict, rng: np.random.Generator) -> np.ndarray:
    low, high = np.array(data["distribution"]["low"]), np.array(data["distribution"]["high"])
    return low + (high - low) * rng.random((COUNT, *low.shape))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_independent_evaluation_agrees(path):
    data = json.loads(path.read_text())
    values = _sample(data, np.random.default_rng(7))
    mechanism = read_mechanism(path)
    ours_values = torch.from_numpy(values)  # the plugin's evaluation of the very same samples
    if isinstance(mechanism, Menu):
        ours = float(mechanism.payments(ours_values).mean())
        assert numpy_menu_revenue(data, values) == pytest.approx(ours, abs=1e-9)
    else:
        ours = mechanism.revenue(ours_values)
        assert numpy_ama_revenue(data, values) == pytest.approx(ours, abs=1e-9)
