"""One training step of a menu generator: sampled types choose through the relaxed choice, revenue goes up.

Per step, ``members`` distributions are drawn from the family and ``types`` values from
each; every type faces its member's menu, its utilities (divided by the member's value
scale, so one tolerance serves every member) go through the :class:`RelaxedChoice`, and
the loss is minus the expected payment ``sum_l sigma_l p_l`` in units of the scale. The
tolerance decays geometrically from ``eps_start`` to ``eps_end`` over training, so the
relaxed choice ends close to the exact one the menu is evaluated with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from did_auctions.choice import RelaxedChoice
from did_auctions.family import Family
from did_auctions.generator import MenuGenerator
from did_auctions.menu import utilities
from did_auctions.runs import check_fields
from did_auctions.schedule import geometric
from did_auctions.values import VALUATIONS

__all__ = ["MenuTraining", "eps_at", "menu_step"]


@dataclass(frozen=True)
class MenuTraining:
    """The settings of a menu training (saved as the run's config)."""

    items: int
    valuation: str
    family: dict
    options: int = 16
    width: int = 128
    steps: int = 2000
    members: int = 1
    types: int = 2048
    lr: float = 3e-3
    eps_start: float = 0.005
    eps_end: float = 0.0002
    seed: int = 0
    block: str = "exact_newton"

    def __post_init__(self) -> None:
        check_fields(self)
        if self.valuation not in VALUATIONS:
            raise ValueError(f"valuation must be one of {', '.join(VALUATIONS)}")
        if min(self.options, self.width, self.steps, self.members, self.types) < 1:
            raise ValueError("options, width, steps, members and types must be >= 1")
        if min(self.lr, self.eps_start, self.eps_end) <= 0:
            raise ValueError("lr, eps_start and eps_end must be > 0")
        if Family.from_json(self.family).base.items != self.items:
            raise ValueError(f"the family's distribution must have {self.items} items")

    def as_json(self) -> dict:
        """The settings as a JSON object."""
        return asdict(self)


def eps_at(settings: MenuTraining, progress: float) -> float:
    """The choice tolerance (a fraction of the value scale) at ``progress`` in [0, 1]: geometric decay."""
    return geometric(settings.eps_start, settings.eps_end, progress)


def menu_step(generator: MenuGenerator, family: Family, choice: RelaxedChoice, settings: MenuTraining,
              rng: torch.Generator, progress: float) -> dict[str, float]:
    """Draw members and types, back-propagate minus the relaxed revenue (in units of scale); return the scalars."""
    boxes = family.draw(settings.members, rng)
    values = torch.stack([family.sample(b, settings.types, rng) for b in boxes])  # [D, M, k]
    scale = torch.tensor([b.scale(settings.valuation) for b in boxes], dtype=torch.float64)
    alloc, price = generator(boxes)  # [D, L, k], [D, L]
    utility = utilities(values, alloc, price) / scale[:, None, None]  # [D, M, L + 1]
    eps = eps_at(settings, progress)
    sigma = choice(utility.reshape(-1, settings.options + 1), eps).reshape(utility.shape)
    with_null = torch.cat([price.new_zeros(len(boxes), 1), price], dim=1) / scale[:, None]  # [D, L + 1]
    relaxed = (sigma * with_null[:, None, :]).sum(-1).mean()
    (-relaxed).backward()
    return {"loss": -relaxed.item(), "revenue_per_scale": relaxed.item(), "eps": eps}
