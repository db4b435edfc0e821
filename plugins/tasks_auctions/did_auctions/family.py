"""A family of distributions, ``U[low + c, high + c]`` for a shift ``c`` in ``[shift_min, shift_max]``.

With ``points > 0`` a member's types are its finite grid (``values.grid``: the midpoints of
``points`` cells per item, equally likely) instead of the continuous box, so a menu can be
trained for the very type set the LP solves.

One distribution is the family with ``shift_min = shift_max = 0``; ``U[c, c+1]^2`` with
``c`` in ``[0, 1]`` is ``low = (0, 0), high = (1, 1), shift = [0, 1]``. A generator trained on
a family reads each member's description and outputs its menu.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from did_core.files import shown
from did_auctions.checks import check_keys, number_list
from did_auctions.values import Box, grid

__all__ = ["Family"]


@dataclass(frozen=True)
class Family:
    """The boxes ``prod_j U[low_j + c, high_j + c]``, ``c in [shift_min, shift_max]``."""

    base: Box
    shift_min: float = 0.0
    shift_max: float = 0.0
    points: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.points, int) and 0 <= self.points <= 1000):
            raise ValueError(f"points: needs an integer in [0, 1000], got {shown(self.points)}")
        if not (math.isfinite(self.shift_min) and math.isfinite(self.shift_max) and self.shift_min <= self.shift_max):
            raise ValueError(f"shift: needs finite MIN <= MAX, got {shown(self.shift_min)} {shown(self.shift_max)}")
        self.member(self.shift_min)  # the lowest member must be a valid box (values >= 0)

    def member(self, shift: float) -> Box:
        """The box of shift ``c``."""
        return Box(tuple(lo + shift for lo in self.base.low), tuple(hi + shift for hi in self.base.high))

    def draw(self, count: int, generator: torch.Generator) -> list[Box]:
        """``count`` members at shifts drawn uniformly (the one member, repeated, when the family has one)."""
        shifts = self.shift_min + (self.shift_max - self.shift_min) * torch.rand(count, generator=generator,
                                                                                 dtype=torch.float64)
        return [self.member(float(c)) for c in shifts]

    def sample(self, box: Box, count: int, generator: torch.Generator) -> Tensor:
        """``count`` types of member ``box``, ``[count, k]``: from the box, or from its grid when ``points > 0``."""
        if not self.points:
            return box.sample(count, generator)
        types, _ = grid(box, self.points)
        return types[torch.randint(types.shape[0], (count,), generator=generator)]

    def as_json(self) -> dict[str, Any]:
        """``{"low", "high", "shift": [MIN, MAX], "points"}``."""
        return {**self.base.as_json(), "shift": [self.shift_min, self.shift_max], "points": self.points}

    @classmethod
    def from_json(cls, data: Any) -> "Family":
        """The inverse of :meth:`as_json` (a ``ValueError`` naming the field for anything else)."""
        data = check_keys(data, "family", {"low", "high", "shift", "points"})
        items = len(data["low"]) if isinstance(data["low"], list) else 0
        low = number_list(data["low"], "family.low", items)
        shift = number_list(data["shift"], "family.shift", 2)
        points = data["points"]
        if isinstance(points, bool) or not isinstance(points, int):
            raise ValueError(f"family.points must be an integer, got {shown(points)}")
        return cls(Box(tuple(low), tuple(number_list(data["high"], "family.high", items))), *shift, points)
