"""The default scheduling generator: a P2P payoff generator ending in ``-softplus``, gauge-fixed.

Adding to player ``p``'s taxes any function of the others' actions ``a_{-p}``
changes no deviation gain, hence no equilibrium (docs/mathematics.md, section 3.1), but it changes
the taxes paid. With ``normalize`` (the default) the generator removes that free
level before the output map: from the last layer's output ``r`` it takes, per
player and ``a_{-p}``, the excess over the smallest value on ``p``'s own real
actions, and returns

    -x_p(a) = -(softplus(r_p(a) - min_{d} r_p(d, a_{-p})) - log 2)   (<= 0)

so every player always has a tax-free action, and the output does not depend on
the level of ``r`` at all. Measured on the quick profile (CCE, relative eps 0.05),
the two simpler forms fail:

* plain ``-softplus(r)`` (``normalize=False``): the level of the taxes moves no
  equilibrium, so the payment term ``lam E sum_i x_i`` drives every ``r`` down
  until the softplus saturates: all taxes 0 and no gradient within 25 steps,
  makespan unchanged (with ``lam = 0`` the level drifts up instead: mean tax 16);
* ``softplus(r)`` minus its own-action minimum: two players train, but with
  three the same drift of ``r`` saturates the softplus and every tax dies.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from did_core.games import joint_mask
from did_core.nn.generators import PayoffGenerator
from did_core.tasks import Configurable, Context, ContextSampler, Options

__all__ = ["TaxGenerator", "excess_over_cheapest"]


def excess_over_cheapest(values: Tensor, mask: Tensor) -> Tensor:
    """Subtract, per player ``p`` and ``a_{-p}``, the smallest value over ``p``'s real actions.

    **Arguments:** ``values [B, N, A..]``, ``mask [B, N, A_max]``.
    **Returns:** the same shape, ``>= 0``, with a zero on every own-action line; 0 on padding.
    """
    jm = joint_mask(mask, values.shape[2:])
    out = []
    for p in range(values.shape[1]):
        cheapest = values[:, p].masked_fill(~jm, float("inf")).amin(dim=1 + p, keepdim=True)
        out.append(torch.where(jm, values[:, p] - cheapest, torch.zeros_like(values[:, p])))
    return torch.stack(out, dim=1)


class TaxGenerator(Configurable, nn.Module):
    """``context -> -x [B, N, M..]`` with taxes ``x >= 0`` (see the module docstring).

    Options: those of ``PayoffGenerator`` except ``output`` (always ``-softplus``),
    plus ``normalize``.
    """

    class Options(Options):
        width: int = Field(64, ge=1)
        depth: int = Field(3, ge=1, description="hidden P2P layers")
        aggregation: str = Field("meanvar", pattern="^(meanvar|mean|max)$")
        output_scale: float = Field(1.0, gt=0, description="multiplies the last layer's output before the map")
        normalize: bool = Field(True, description="remove the free tax level: a tax-free action on every line")

    def __init__(self, sampler: ContextSampler, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        inner = self.options.model_dump(exclude={"normalize"})
        self.payoff = PayoffGenerator(sampler, output="identity", **inner)

    def forward(self, context: Context) -> Tensor:
        raw = self.payoff(context)
        _, mask = self.payoff.sampler.payoff_features(context)
        jm = joint_mask(mask, raw.shape[2:]).unsqueeze(1)
        if self.options.normalize:
            taxes = F.softplus(excess_over_cheapest(raw, mask)) - math.log(2.0)
        else:
            taxes = F.softplus(raw)
        return torch.where(jm, -taxes, torch.zeros_like(taxes))
