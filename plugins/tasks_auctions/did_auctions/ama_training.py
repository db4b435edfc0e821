"""One training step of an affine-maximizer auction: the softmax relaxation of the outcome choice.

With ``alpha > 0`` the auction's choice is the policy block's entropy-regularised optimum
of the one-round MDP, a softmax over affine welfares ``(sum_i w_i v_i(o) + lambda(o)) / alpha``,
and its payments (``did_core.affine_maximizer``) are smooth in the weights, boosts and
lottery allocations; the loss is minus the mean revenue. ``alpha`` decays geometrically
from ``alpha_start`` to ``alpha_end`` (fractions of the value scale: the largest sum of
one bidder's high values); evaluation is exact (``alpha = 0``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from did_auctions.ama import AMAGenerator, AuctionAMA
from did_auctions.runs import check_fields
from did_auctions.schedule import geometric
from did_auctions.values import Box

__all__ = ["AMATraining", "alpha_at", "ama_step"]


@dataclass(frozen=True)
class AMATraining:
    """The settings of an affine-maximizer training (saved as the run's config)."""

    bidders: int
    items: int
    low: float = 0.0
    high: float = 1.0
    lotteries: int = 32
    steps: int = 2000
    profiles: int = 1024
    lr: float = 1e-2
    alpha_start: float = 0.05
    alpha_end: float = 0.001
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
        Box((self.low,), (self.high,))  # finite, 0 <= low < high
        if min(self.bidders, self.items, self.steps, self.profiles) < 1 or self.lotteries < 0:
            raise ValueError("bidders, items, steps and profiles must be >= 1, lotteries >= 0")
        if min(self.lr, self.alpha_start, self.alpha_end) <= 0:
            raise ValueError("lr, alpha_start and alpha_end must be > 0")

    def as_json(self) -> dict:
        """The settings as a JSON object."""
        return asdict(self)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``low``, ``high`` ``[n, k]`` (i.i.d. values)."""
        shape = (self.bidders, self.items)
        return (torch.full(shape, self.low, dtype=torch.float64), torch.full(shape, self.high, dtype=torch.float64))

    @property
    def scale(self) -> float:
        """The largest sum of one bidder's values."""
        return self.items * self.high


def alpha_at(settings: AMATraining, progress: float) -> float:
    """The softmax temperature, in units of value, at ``progress`` in [0, 1]."""
    return geometric(settings.alpha_start, settings.alpha_end, progress) * settings.scale


def ama_step(generator: AMAGenerator, settings: AMATraining, rng: torch.Generator,
             progress: float) -> dict[str, float]:
    """Draw type profiles, back-propagate minus the relaxed revenue; return the scalars."""
    low, high = settings.bounds()
    weights, alloc, boosts = generator()
    auction = AuctionAMA(weights, alloc, boosts, low, high)
    values = auction.sample(settings.profiles, rng)
    alpha = alpha_at(settings, progress)
    relaxed = auction.run(values, alpha).revenue.mean()
    (-relaxed).backward()
    return {"loss": -relaxed.item(), "revenue": relaxed.item(), "alpha": alpha}
