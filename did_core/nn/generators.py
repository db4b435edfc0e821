"""A generic mechanism generator for payoff-shaped contexts (docs/mathematics.md, sections 5-6).

``PayoffGenerator`` reads a sampler's ``payoff_features(context)``
(``[B, C, N, A_1..A_N]`` and a mask), runs a stack of P2P layers and returns one
payoff-shaped channel ``[B, N, A_1..A_N]`` through an output map: ``identity``
(a whole game), ``softplus`` (non-negative) or ``neg_softplus`` (non-positive,
e.g. taxes subtracted from payoffs). Padded entries are exactly 0. One network
serves every game size because the parameters depend on channels only.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from did_core.games import joint_mask
from did_core.nn.layers import P2P
from did_core.tasks import Configurable, Context, ContextSampler, Options

__all__ = ["PayoffGenerator", "OUTPUT_MAPS"]

OUTPUT_MAPS = {
    "identity": lambda x: x,
    "softplus": F.softplus,
    "neg_softplus": lambda x: -F.softplus(x),
}


class PayoffGenerator(Configurable, nn.Module):
    """P2P stack: ``context -> [B, N, A_1..A_N]`` (see module docstring)."""

    class Options(Options):
        width: int = Field(64, ge=1)
        depth: int = Field(3, ge=1, description="hidden P2P layers")
        aggregation: Literal["meanvar", "mean", "max"] = "meanvar"
        output: Literal["identity", "softplus", "neg_softplus"] = "identity"
        output_scale: float = Field(1.0, gt=0, description="multiplies the last layer's output before the map")

    def __init__(self, sampler: ContextSampler, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        self.sampler = sampler
        probe, _ = sampler.payoff_features(sampler.sample(1, torch.Generator().manual_seed(0)))
        o = self.options
        widths = [probe.shape[1]] + [o.width] * o.depth
        self.hidden = nn.ModuleList(P2P(a, b, o.aggregation) for a, b in zip(widths[:-1], widths[1:]))
        self.head = P2P(widths[-1], 1, o.aggregation, activation=None)

    def forward(self, context: Context) -> Tensor:
        features, mask = self.sampler.payoff_features(context)
        h = features.to(self.head.linear.weight.dtype)
        for layer in self.hidden:
            h = layer(h, mask)
        raw = self.options.output_scale * self.head(h, mask)[:, 0]
        real = joint_mask(mask, raw.shape[2:]).unsqueeze(1)
        return torch.where(real, OUTPUT_MAPS[self.options.output](raw), torch.zeros_like(raw))
