"""The menu generator: a distribution's description in, a menu of ``L`` options out.

Trained on one distribution it is a free menu (its input never changes); trained on a
family it is the generator of item 3 of docs/auctions.md, one network for every member.
Its input is the description divided by the value scale ``s`` (``Box.scale``) and its
prices are multiplied by ``s``, so a menu scales with the values.

* additive: ``z = sigmoid(logits) in [0, 1]^k``;
* unit demand: ``z`` = the first ``k`` entries of a softmax over ``k + 1`` logits (the last
  one is "no item"), so ``z >= 0`` and ``sum z <= 1``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from did_auctions.menu import Menu
from did_auctions.values import Box

__all__ = ["MenuGenerator"]


class MenuGenerator(nn.Module):
    """MLP ``[D, 2k]`` descriptions -> ``alloc [D, L, k]``, ``price [D, L]`` (float64)."""

    def __init__(self, items: int, options: int, valuation: str, width: int = 128) -> None:
        super().__init__()
        self.items, self.options, self.valuation = items, options, valuation
        self.per_option = items + (2 if valuation == "unit_demand" else 1)  # allocation logits, then the price
        self.net = nn.Sequential(
            nn.Linear(2 * items, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, options * self.per_option),
        ).to(torch.float64)
        self._spread_options()

    @torch.no_grad()
    def _spread_options(self) -> None:
        """Start from a diverse menu, every bundle at several prices: option ``l`` offers the ``l``-th nonempty
        bundle in turn (additive: every subset of the items; unit demand: every single item) with allocation
        logits +-4, at a price uniform in ``[0.3, 0.8]`` times the bundle's share of the value scale
        (``|bundle| / k`` additive, 1 unit demand). This is the last layer's bias; its weights are shrunk so that
        the bias dominates. Options that start alike, or that no type takes, get no gradient under the relaxed
        choice and stay dead: a random start left one item without an option of its own (2 items additive)."""
        last = self.net[-1]
        last.weight.mul_(0.1)
        bias = last.bias.view(self.options, self.per_option)
        bias.fill_(-4.0)
        for option in range(self.options):
            if self.valuation == "unit_demand":
                bundle = [option % self.items]
            else:
                mask = option % (2 ** self.items - 1) + 1
                bundle = [j for j in range(self.items) if mask >> j & 1]
            bias[option, bundle] = 4.0
            share = 1.0 if self.valuation == "unit_demand" else len(bundle) / self.items
            bias[option, -1] = (0.3 + 0.5 * torch.rand(()).item()) * share
    def forward(self, boxes: list[Box]) -> tuple[Tensor, Tensor]:
        """The menus of ``boxes`` (``D`` of them): ``alloc [D, L, k]``, ``price [D, L]`` in units of value."""
        scale = torch.tensor([b.scale(self.valuation) for b in boxes], dtype=torch.float64)
        features = torch.stack([b.features() for b in boxes]) / scale[:, None]
        out = self.net(features).reshape(len(boxes), self.options, self.per_option)
        logits, raw_price = out[..., :-1], out[..., -1]
        if self.valuation == "unit_demand":
            alloc = torch.softmax(logits, dim=-1)[..., :self.items]
        else:
            alloc = torch.sigmoid(logits)
        return alloc, raw_price * scale[:, None]

    @torch.no_grad()
    def menu(self, box: Box) -> Menu:
        """The exact menu for one ``box`` (for evaluation and export)."""
        alloc, price = self([box])
        return Menu(alloc[0].clone(), price[0].clone(), self.valuation, box)
