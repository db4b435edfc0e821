"""The market's generator: the core's P2P trunk over the market's payoff features, read out as one tax rate per
firm."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from did_core.games import joint_mask
from did_core.nn.generators import P2PStack
from did_core.tasks import Context, ContextSampler

__all__ = ["TaxRateGenerator"]


class TaxRateGenerator(P2PStack):
    """``context -> x [B, N]``: firm ``i``'s tax rate per unit of emissions, ``max_rate tanh(h_i)``, where ``h_i``
    is the trunk's one head channel averaged over the real joint actions in firm ``i``'s payoff slice.

    The trunk is equivariant, so permuting the firms permutes the rates, and padding changes no rate.
    """

    class Options(P2PStack.Options):
        max_rate: float = Field(2.0, gt=0, description="the largest tax (or subsidy) per unit of emissions")

    def __init__(self, sampler: ContextSampler, **options: Any) -> None:
        super().__init__(**options)
        self.build(sampler, 1)

    def forward(self, context: Context) -> Tensor:
        head, mask = self.trunk(context)  # [B, 1, N, M..], [B, N, M]
        real = joint_mask(mask, head.shape[3:]).unsqueeze(1).to(head.dtype)  # [B, 1, M..]
        mean = (head[:, 0] * real).flatten(2).sum(dim=2) / real.flatten(1).sum(dim=1, keepdim=True)
        return self.options.max_rate * torch.tanh(mean)
