"""Affine-maximizer auctions against independent truth: VCG's known revenue, payments recomputed by brute
force from the definition, no bidder gains by misreporting, and the exchange JSON round-trips."""

from __future__ import annotations

import pytest
import torch

from did_auctions.ama import AMAGenerator, AuctionAMA, ama_from_json, deterministic_allocations
from did_auctions.ama_training import AMATraining, ama_step

LOW, HIGH = torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64)


def _random_auction(seed: int, bidders: int = 2, items: int = 2, lotteries: int = 3) -> AuctionAMA:
    torch.manual_seed(seed)
    generator = AMAGenerator(bidders, items, lotteries)
    with torch.no_grad():
        generator.log_weights.normal_(0, 0.3)
        generator.boosts.normal_(0, 0.3)
    low, high = torch.zeros(bidders, items, dtype=torch.float64), torch.ones(bidders, items, dtype=torch.float64)
    return generator.auction(low, high)


def _brute_force(auction: AuctionAMA, values: torch.Tensor) -> tuple[int, list[float]]:
    """The chosen outcome and payments of one profile ``values [n, k]``, straight from the definition
    (docs/auctions.md)."""
    w, alloc, boosts = auction.weights.tolist(), auction.alloc, auction.boosts.tolist()
    worth = [[float(values[i] @ alloc[o, i]) for i in range(len(w))] for o in range(len(boosts))]
    scores = [sum(w[i] * worth[o][i] for i in range(len(w))) + boosts[o] for o in range(len(boosts))]
    chosen = max(range(len(scores)), key=lambda o: (scores[o], -o))  # ties to the lowest index
    payments = []
    for i in range(len(w)):
        others = [scores[o] - w[i] * worth[o][i] for o in range(len(boosts))]
        payments.append((max(others) - others[chosen]) / w[i])
    return chosen, payments


def test_vcg_revenue_is_twice_the_expected_minimum():
    vcg = AuctionAMA(torch.ones(2, dtype=torch.float64), deterministic_allocations(2, 2),
                     torch.zeros(9, dtype=torch.float64), LOW, HIGH)
    values = vcg.sample(200_000, torch.Generator().manual_seed(0))
    assert vcg.revenue(values) == pytest.approx(2 / 3, abs=0.003)  # each item: E min(v1, v2) = 1/3


@pytest.mark.parametrize("seed", range(3))
def test_choice_and_payments_match_the_definition(seed):
    auction = _random_auction(seed)
    values = auction.sample(25, torch.Generator().manual_seed(seed))
    outcome = auction.run(values)
    for b in range(len(values)):
        chosen, payments = _brute_force(auction, values[b])
        assert int(outcome.policy[b, 0].argmax()) == chosen
        torch.testing.assert_close(outcome.payments[b], torch.tensor(payments, dtype=torch.float64))


@pytest.mark.parametrize("seed", range(2))
def test_no_bidder_gains_by_misreporting(seed):
    auction = _random_auction(seed, lotteries=4)
    generator = torch.Generator().manual_seed(100 + seed)
    truths = auction.sample(20, generator)
    for truth in truths:
        honest = auction.run(truth[None])
        for bidder in range(2):
            utility = (honest.agent_values[0, bidder] - honest.payments[0, bidder]).item()
            assert utility >= -1e-9  # individually rational
            lies = truth.repeat(40, 1, 1)
            lies[:, bidder] = torch.rand(40, 2, generator=generator, dtype=torch.float64)
            lied = auction.run(lies)
            alloc = auction.alloc[lied.policy[:, 0].argmax(dim=1)]  # [40, n, k]
            gained = (alloc[:, bidder] * truth[bidder]).sum(1) - lied.payments[:, bidder]
            assert torch.all(gained <= utility + 1e-9)


def test_exchange_json_round_trips():
    auction = _random_auction(0)
    again = ama_from_json(auction.as_json())
    assert again.as_json() == auction.as_json()


def test_training_beats_vcg_quickly():
    settings = AMATraining(bidders=2, items=2, lotteries=0, steps=60, profiles=512, lr=0.05)
    torch.manual_seed(0)
    generator = AMAGenerator(2, 2, 0)
    optimizer = torch.optim.Adam(generator.parameters(), lr=settings.lr)
    rng = torch.Generator().manual_seed(0)
    for step in range(settings.steps):
        optimizer.zero_grad()
        ama_step(generator, settings, rng, step / settings.steps)
        optimizer.step()
    auction = generator.auction(*settings.bounds())
    assert auction.revenue(auction.sample(50_000, torch.Generator().manual_seed(1))) > 0.72  # VCG: 2/3
