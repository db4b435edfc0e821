"""Menus for one bidder (the taxation principle) and the exact choice that evaluates them.

A menu lists ``L`` options, each an allocation ``z_l [k]`` and a price ``p_l``; the null
option (nothing, price 0) is always there, at index 0 of every utility vector below. The
bidder of type ``v`` takes an option of highest utility ``v . z_l - p_l``, so every menu is
incentive compatible and individually rational, whatever it holds. Ties go to the higher
price (the seller's favourite among the bidder's best), as the optimal mechanisms are
stated.

The JSON form (``kind: "menu"``) is the exchange format: anyone can evaluate a shipped menu
from it alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from did_core.files import shown
from did_auctions.values import VALUATIONS, Box

__all__ = ["Menu", "utilities", "exact_choice", "revenue", "MAX_OPTIONS", "TIE_TOLERANCE"]

#: the most options a menu file may list (a menu is evaluated on 10^6 types at once in chunks; this bounds the chunk).
MAX_OPTIONS = 100_000
#: utilities within this fraction of the value scale of the best count as tied (then the higher price is taken).
TIE_TOLERANCE = 1e-9
#: how many types the exact choice evaluates at once (bounds memory: CHUNK x (L + 1) utilities).
CHUNK = 1 << 16


def utilities(values: Tensor, alloc: Tensor, price: Tensor) -> Tensor:
    """Every type's utility for the null option and each menu option.

    ``values [..., M, k]``, ``alloc [..., L, k]``, ``price [..., L]`` (leading axes broadcast: one menu per
    distribution) -> ``[..., M, L + 1]``, column 0 the null option (utility 0)."""
    option = values @ alloc.transpose(-1, -2) - price.unsqueeze(-2)
    return torch.cat([torch.zeros_like(option[..., :1]), option], dim=-1)


def exact_choice(utility: Tensor, price: Tensor, tolerance: float) -> Tensor:
    """The option each type takes: highest utility, ties (within ``tolerance``) to the higher price.

    ``utility [..., M, L + 1]`` (column 0 the null option), ``price [..., L]`` -> indices ``[..., M]`` into
    the ``L + 1`` columns (0: the null option)."""
    with_null = torch.cat([torch.zeros_like(price[..., :1]), price], dim=-1).unsqueeze(-2)
    best = utility.max(dim=-1, keepdim=True).values
    tied = utility >= best - tolerance
    return torch.where(tied, with_null, torch.full_like(utility, -math.inf)).argmax(dim=-1)


@dataclass(frozen=True)
class Menu:
    """A menu for one bidder: ``alloc [L, k]``, ``price [L]`` (float64), for ``valuation`` on values drawn
    from ``box``."""

    alloc: Tensor
    price: Tensor
    valuation: str
    box: Box

    def __post_init__(self) -> None:
        if self.valuation not in VALUATIONS:
            raise ValueError(f"valuation must be one of {', '.join(VALUATIONS)}, got {shown(self.valuation)}")
        if self.alloc.dim() != 2 or self.alloc.shape[1] != self.box.items or self.price.shape != self.alloc.shape[:1]:
            raise ValueError(f"menu: alloc must be [L, {self.box.items}] and price [L], got {list(self.alloc.shape)} "
                             f"and {list(self.price.shape)}")
        if not (torch.isfinite(self.alloc).all() and torch.isfinite(self.price).all()):
            raise ValueError("menu: allocations and prices must be finite")
        slack = 1e-9
        if (self.alloc < -slack).any() or (self.alloc > 1 + slack).any():
            raise ValueError("menu: every allocation probability must lie in [0, 1]")
        if self.valuation == "unit_demand" and (self.alloc.sum(dim=1) > 1 + slack).any():
            raise ValueError("menu: a unit-demand allocation must sum to at most 1 over the items")

    @property
    def options(self) -> int:
        """``L``, the options besides the null one."""
        return self.alloc.shape[0]

    def choice(self, values: Tensor) -> Tensor:
        """The exact choice of types ``values [M, k]``: indices ``[M]`` (0: the null option, ``l + 1``: option
        ``l``)."""
        tolerance = TIE_TOLERANCE * self.box.scale(self.valuation)
        return torch.cat([exact_choice(utilities(chunk, self.alloc, self.price), self.price, tolerance)
                          for chunk in values.split(CHUNK)])

    def payments(self, values: Tensor) -> Tensor:
        """The price each type ``values [M, k]`` pays under the exact choice, ``[M]``."""
        with_null = torch.cat([self.price.new_zeros(1), self.price])
        return with_null[self.choice(values)]

    def as_json(self) -> dict[str, Any]:
        """The exchange form: ``{"kind": "menu", "items", "valuation", "distribution",
        "options": [{"alloc", "price"}]}``."""
        return {
            "kind": "menu",
            "items": self.box.items,
            "valuation": self.valuation,
            "distribution": self.box.as_json(),
            "options": [{"alloc": z.tolist(), "price": float(p)} for z, p in zip(self.alloc, self.price)],
        }


def revenue(menu: Menu, values: Tensor, probabilities: Tensor | None = None) -> float:
    """Expected revenue of ``menu`` over types ``values [M, k]``: the mean payment, or the
    ``probabilities [M]``-weighted sum on a finite type set."""
    paid = menu.payments(values)
    return float(paid.mean() if probabilities is None else (paid * probabilities).sum())
