"""Independent uniform valuations: the distribution's description, its samples and its finite grid.

A bidder's type is a value per item, ``v [k]``; every value is drawn independently from
``U[low_j, high_j]``. The valuation kind fixes which allocations a bidder may receive:

* ``additive``: any probability per item, ``z in [0, 1]^k``; the bidder values ``v . z``;
* ``unit_demand``: a lottery over at most one item, ``z >= 0, sum z <= 1``; its value is ``v . z`` too.

So utility is ``v . z - p`` under both kinds; the kind only constrains ``z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from did_core.files import shown

__all__ = ["VALUATIONS", "Box", "grid"]

#: the valuation kinds a menu can be built for.
VALUATIONS = ("additive", "unit_demand")


@dataclass(frozen=True)
class Box:
    """The product of intervals ``prod_j U[low_j, high_j]`` one bidder's values are drawn from (``k`` items)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError(f"distribution: low and high must list the same number (>= 1) of items, got "
                             f"{len(self.low)} and {len(self.high)}")
        for lo, hi in zip(self.low, self.high):
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
                raise ValueError(f"distribution: every item needs finite 0 <= low < high, got "
                                 f"low={shown(list(self.low))}, high={shown(list(self.high))}")

    @property
    def items(self) -> int:
        """``k``, the number of items."""
        return len(self.low)

    def scale(self, valuation: str) -> float:
        """The largest value a type can have for one allocation: ``sum high`` (additive), ``max high`` (unit demand).

        Prices and the choice tolerance are measured in this unit, so one setting serves every scale."""
        return float(sum(self.high)) if valuation == "additive" else float(max(self.high))

    def sample(self, count: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
        """``count`` independent types, ``[count, k]``."""
        low = torch.tensor(self.low, dtype=dtype)
        high = torch.tensor(self.high, dtype=dtype)
        return low + (high - low) * torch.rand(count, self.items, generator=generator, dtype=dtype)

    def features(self) -> Tensor:
        """The description a generator reads, ``[2k]``: ``low`` then ``high``."""
        return torch.tensor(self.low + self.high, dtype=torch.float64)

    def as_json(self) -> dict[str, list[float]]:
        """``{"low": [..k], "high": [..k]}``."""
        return {"low": list(self.low), "high": list(self.high)}


def grid(box: Box, points: int) -> tuple[Tensor, Tensor]:
    """The finite type set of ``points`` cells per item: cell midpoints ``[points^k, k]`` and their
    probabilities ``[points^k]`` (each ``1 / points^k``, the uniform mass of its cell)."""
    axes = [torch.linspace(lo, hi, 2 * points + 1, dtype=torch.float64)[1::2] for lo, hi in zip(box.low, box.high)]
    types = torch.cartesian_prod(*axes).reshape(-1, box.items)
    return types, torch.full((types.shape[0],), 1.0 / types.shape[0], dtype=torch.float64)
