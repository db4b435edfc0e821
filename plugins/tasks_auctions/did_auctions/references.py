"""Known optima and published results the auction commands and the benchmark compare with (docs/auctions.md
cites each source)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reference", "menu_reference", "ama_reference", "itemwise_myerson"]


@dataclass(frozen=True)
class Reference:
    """An expected revenue from the literature: ``value`` and where it comes from."""

    value: float
    source: str


# (valuation, low, high) -> the optimum or best published one-bidder revenue.
_MENUS: dict[tuple[str, tuple[float, ...], tuple[float, ...]], Reference] = {
    ("additive", (0.0, 0.0), (1.0, 1.0)): Reference(0.5491, "optimum (Manelli & Vincent 2006)"),
    ("unit_demand", (0.0, 0.0), (1.0, 1.0)): Reference(0.3849, "optimum, price 1/sqrt(3) (Pavlov 2011)"),
    ("additive", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
        Reference(0.8606, "the best price for the grand bundle (1.1629; the optimum, the straight-jacket auction "
                          "of Giannakopoulos & Koutsoupias 2018, is higher)"),
    ("additive", (4.0, 4.0), (16.0, 7.0)): Reference(9.781, "optimum (Daskalakis, Deckelbaum & Tzamos 2017), "
                                                           "as tabulated by Duetting et al."),
}


def menu_reference(valuation: str, low: tuple[float, ...], high: tuple[float, ...]) -> Reference | None:
    """The reference revenue of a one-bidder setting, if the literature has one."""
    return _MENUS.get((valuation, tuple(low), tuple(high)))


def itemwise_myerson(bidders: int, items: int) -> float:
    """Selling each item separately by Myerson's optimal auction (second price, reserve 1/2) to ``bidders``
    bidders with i.i.d. ``U[0, 1]`` values: ``items * n * integral_{1/2}^{1} (2v - 1) v^(n-1) dv``
    (the expected positive virtual value of the highest bidder)."""
    n = bidders
    per_item = n * ((2 / (n + 1) - 1 / n) - (2 / (n + 1) * 0.5 ** (n + 1) - 0.5 ** n / n))
    return items * per_item


def ama_reference(bidders: int, items: int, low: list[list[float]], high: list[list[float]]) -> Reference | None:
    """What an affine-maximizer auction of an i.i.d. ``U[0, 1]`` setting is held against: the published
    affine maximizers for 2 x 2, else selling each item by Myerson's auction; ``None`` for other distributions."""
    if {x for row in low for x in row} != {0.0} or {x for row in high for x in row} != {1.0}:
        return None
    if (bidders, items) == (2, 2):
        return Reference(0.86, "published affine maximizers, about 0.86-0.87 (Curry, Sandholm & Dickerson 2023; "
                               "Duan et al. 2023)")
    return Reference(itemwise_myerson(bidders, items), "item-wise Myerson (reserve 1/2), exact")
