"""Affine-maximizer auctions: ``n`` bidders, ``k`` items, a finite set of outcomes (lotteries allowed).

An outcome ``o`` gives bidder ``i`` item ``j`` with probability ``alloc[o, i, j]`` (each
item's probabilities sum to at most 1 over the bidders); bidder ``i`` of additive type
``v_i [k]`` values it ``v_i(o) = v_i . alloc[o, i]``. With weights ``w > 0`` and boosts
``lambda(o)`` the auction picks the outcome maximising ``sum_i w_i v_i(o) + lambda(o)``
and charges

    p_i = ( max_o [sum_{h != i} w_h v_h(o) + lambda(o)] - [sum_{h != i} w_h v_h(o*) + lambda(o*)] ) / w_i,

strategyproof and individually rational for every parameter (docs/auctions.md). It is the
affine maximizer of :mod:`did_core.affine_maximizer` on the one-round MDP whose actions
are the outcomes, with the counterfactual "bidder i absent" (its values 0): that module
computes the choice and payments; this one supplies the outcomes, the types and the
exchange form. Exact evaluation: ties to the lowest outcome index. Training: the
entropy-regularised choice (``alpha > 0``, a softmax over affine welfares).

Shapes: ``B`` type profiles, ``n`` bidders, ``k`` items, ``O`` outcomes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from did_core.affine_maximizer import AMAOutcome, one_round_mdp, run_affine_maximizer
from did_core.files import shown
from did_auctions.checks import MAX_BIDDERS, MAX_ITEMS, MAX_OUTCOMES, check_keys, count, number_list
from did_auctions.values import Box

__all__ = ["AuctionAMA", "ama_from_json", "deterministic_allocations", "AMAGenerator", "CHUNK"]

#: type profiles evaluated at once by :meth:`AuctionAMA.revenue`.
CHUNK = 1 << 15


def deterministic_allocations(bidders: int, items: int) -> Tensor:
    """Every way to give each item to one bidder or to nobody: ``[(n + 1)^k, n, k]`` 0/1 allocations,
    the empty allocation first."""
    rows = []
    for owners in itertools.product(range(bidders + 1), repeat=items):  # owner 0: nobody
        alloc = torch.zeros(bidders, items, dtype=torch.float64)
        for item, owner in enumerate(owners):
            if owner:
                alloc[owner - 1, item] = 1.0
        rows.append(alloc)
    return torch.stack(rows)


@dataclass(frozen=True)
class AuctionAMA:
    """An affine-maximizer auction: ``weights [n]``, ``alloc [O, n, k]``, ``boosts [O]``; values of bidder ``i``
    for item ``j`` drawn from ``U[low[i, j], high[i, j]]`` (``low``, ``high`` ``[n, k]``)."""

    weights: Tensor
    alloc: Tensor
    boosts: Tensor
    low: Tensor
    high: Tensor

    def __post_init__(self) -> None:
        outcomes, bidders, items = self.alloc.shape
        if self.weights.shape != (bidders,) or self.boosts.shape != (outcomes,):
            raise ValueError(f"ama: weights must be [{bidders}] and boosts [{outcomes}], got "
                             f"{list(self.weights.shape)} and {list(self.boosts.shape)}")
        if self.low.shape != (bidders, items) or self.high.shape != (bidders, items):
            raise ValueError(f"ama: distribution low and high must be [{bidders}, {items}]")
        for i in range(bidders):
            Box(tuple(self.low[i].tolist()), tuple(self.high[i].tolist()))  # finite, 0 <= low < high
        if not all(bool(torch.isfinite(t).all()) for t in (self.weights, self.alloc, self.boosts)):
            raise ValueError("ama: weights, allocations and boosts must be finite")
        if bool((self.weights <= 0).any()):
            raise ValueError(f"ama: weights must be positive, got {shown(self.weights.tolist())}")
        slack = 1e-9
        if bool((self.alloc < -slack).any() or (self.alloc.sum(dim=1) > 1 + slack).any()):
            raise ValueError("ama: an outcome's probabilities of an item must be >= 0 and sum to at most 1 "
                             "over the bidders")

    @property
    def bidders(self) -> int:
        """``n``."""
        return self.alloc.shape[1]

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` type profiles ``[count, n, k]``."""
        shape = (count, *self.low.shape)
        return self.low + (self.high - self.low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    def run(self, values: Tensor, alpha: float = 0.0) -> AMAOutcome:
        """The auction on type profiles ``values [B, n, k]``: exact (``alpha = 0``) or relaxed (``alpha > 0``,
        differentiable in the parameters). The outcome chosen is the MDP's action, ``AMAOutcome.policy [B, 1, O]``."""
        rewards = outcome_values(values, self.alloc)
        return run_affine_maximizer(one_round_mdp(self.alloc.shape[0]), rewards, torch.zeros_like(rewards),
                                    self.weights, self.boosts[None, :], alpha)

    @torch.no_grad()
    def revenue(self, values: Tensor) -> float:
        """The exact expected revenue over type profiles ``values [B, n, k]`` (the mean of ``sum_i p_i``)."""
        total = sum(float(self.run(chunk).revenue.sum()) for chunk in values.split(CHUNK))
        return total / values.shape[0]

    def as_json(self) -> dict[str, Any]:
        """The exchange form ``{"kind": "ama", "bidders", "items", "distribution", "weights", "outcomes"}``."""
        return {
            "kind": "ama",
            "bidders": self.bidders,
            "items": self.alloc.shape[2],
            "distribution": {"low": self.low.tolist(), "high": self.high.tolist()},
            "weights": self.weights.tolist(),
            "outcomes": [{"alloc": a.tolist(), "boost": float(b)} for a, b in zip(self.alloc, self.boosts)],
        }


def outcome_values(values: Tensor, alloc: Tensor) -> Tensor:
    """Each bidder's value of each outcome as the one-round MDP's rewards: ``values [B, n, k]``,
    ``alloc [O, n, k]`` -> ``[B, n, 1, O]``."""
    return torch.einsum("bnk,onk->bno", values, alloc).unsqueeze(2)


def _matrix(value: Any, where: str, rows: int, cols: int) -> list[list[float]]:
    if not isinstance(value, list) or len(value) != rows:
        raise ValueError(f"{where} must be a list of {rows} lists, got {shown(value)}")
    return [number_list(row, f"{where}[{i}]", cols) for i, row in enumerate(value)]


def ama_from_json(data: Any) -> AuctionAMA:
    """An :class:`AuctionAMA` from the exchange form (already parsed JSON)."""
    data = check_keys(data, "the ama", {"kind", "bidders", "items", "distribution", "weights", "outcomes"})
    bidders = count(data["bidders"], "bidders", MAX_BIDDERS)
    items = count(data["items"], "items", MAX_ITEMS)
    dist = check_keys(data["distribution"], "distribution", {"low", "high"})
    low = _matrix(dist["low"], "distribution.low", bidders, items)
    high = _matrix(dist["high"], "distribution.high", bidders, items)
    weights = number_list(data["weights"], "weights", bidders)
    outcomes = data["outcomes"]
    if not isinstance(outcomes, list) or not 1 <= len(outcomes) <= MAX_OUTCOMES:
        raise ValueError(f"outcomes must be a list of 1 to {MAX_OUTCOMES} outcomes, got {shown(outcomes)}")
    alloc, boosts = [], []
    for o, outcome in enumerate(outcomes):
        outcome = check_keys(outcome, f"outcomes[{o}]", {"alloc", "boost"})
        alloc.append(_matrix(outcome["alloc"], f"outcomes[{o}].alloc", bidders, items))
        boosts.append(number_list([outcome["boost"]], f"outcomes[{o}].boost", 1)[0])
    f64 = {"dtype": torch.float64}
    return AuctionAMA(torch.tensor(weights, **f64), torch.tensor(alloc, **f64), torch.tensor(boosts, **f64),
                      torch.tensor(low, **f64), torch.tensor(high, **f64))


class AMAGenerator(nn.Module):
    """The learnable parameters of an affine-maximizer auction: ``weights = exp(log_w)``, a boost per outcome,
    the ``(n + 1)^k`` deterministic allocations and ``lotteries`` learned ones (per item a softmax over the
    ``n`` bidders and nobody)."""

    def __init__(self, bidders: int, items: int, lotteries: int) -> None:
        super().__init__()
        self.register_buffer("fixed", deterministic_allocations(bidders, items))
        outcomes = self.fixed.shape[0] + lotteries
        self.log_weights = nn.Parameter(torch.zeros(bidders, dtype=torch.float64))
        self.boosts = nn.Parameter(torch.zeros(outcomes, dtype=torch.float64))
        self.lottery_logits = nn.Parameter(torch.randn(lotteries, items, bidders + 1, dtype=torch.float64))

    def forward(self) -> tuple[Tensor, Tensor, Tensor]:
        """``weights [n]``, ``alloc [O, n, k]``, ``boosts [O]``."""
        lottery = torch.softmax(self.lottery_logits, dim=-1)[..., :-1].transpose(1, 2)  # [lotteries, n, k]
        return self.log_weights.exp(), torch.cat([self.fixed, lottery]), self.boosts

    def auction(self, low: Tensor, high: Tensor) -> AuctionAMA:
        """The current parameters as an exact :class:`AuctionAMA` (detached)."""
        weights, alloc, boosts = (t.detach().clone() for t in self())
        return AuctionAMA(weights, alloc, boosts, low, high)
