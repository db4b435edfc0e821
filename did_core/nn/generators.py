"""Generic mechanism generators for payoff-shaped contexts (docs/mathematics.md, sections 5-6).

* :class:`P2PStack` is the trunk they share: it reads a sampler's
  ``payoff_features(context)`` (``[B, C, N, A_1..A_N]`` and a mask) and runs
  ``depth`` P2P layers and a P2P head of ``channels`` outputs. A task's own
  generator subclasses it and maps the head's output to its intervention.
* :class:`PayoffGenerator` returns one payoff-shaped channel ``[B, N, A_1..A_N]``
  through an output map: ``identity`` (a whole game), ``softplus`` (non-negative)
  or ``neg_softplus`` (non-positive, e.g. taxes subtracted from payoffs).
* :class:`LineGaugedGenerator` returns payments (or, with ``sign = -1``, taxes)
  ``>= 0`` per player and joint action with the free level removed (see its docstring).

Padded entries are exactly 0. One network serves every game size because the
parameters depend on channels only.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from did_core.games import excess_over_line_minimum, joint_mask
from did_core.nn.layers import P2P
from did_core.tasks import Configurable, Context, ContextSampler, Options

__all__ = ["P2PStack", "PayoffGenerator", "LineGaugedGenerator", "OUTPUT_MAPS"]

OUTPUT_MAPS = {
    "identity": lambda x: x,
    "softplus": F.softplus,
    "neg_softplus": lambda x: -F.softplus(x),
}


class P2PStack(Configurable, nn.Module):
    """The shared trunk: ``context -> (head [B, channels, N, A_1..A_N], mask [B, N, A_max])``.

    Subclasses declare ``Options`` with at least ``width``, ``depth`` and
    ``aggregation`` (subclass ``P2PStack.Options``), call ``super().__init__(**options)``
    (which initialises the ``nn.Module`` and validates the options) and then :meth:`build`
    with their head's channel count::

        class TwoHeads(P2PStack):
            def __init__(self, sampler, **options):
                super().__init__(**options)
                self.build(sampler, 2)

            def forward(self, context):
                head, mask = self.trunk(context)
                return head[:, 0] - head[:, 1]
    """

    class Options(Options):
        width: int = Field(64, ge=1)
        depth: int = Field(3, ge=1, description="hidden P2P layers")
        aggregation: Literal["meanvar", "mean", "max"] = "meanvar"

    def __init__(self, **options: Any) -> None:
        nn.Module.__init__(self)  # first: the options and layers are attributes of a module
        Configurable.__init__(self, **options)

    def build(self, sampler: ContextSampler, channels: int) -> None:
        """Create the layers for ``sampler``'s feature channels (probed on one sampled context)."""
        self.sampler = sampler
        probe, _ = sampler.payoff_features(sampler.sample(1, torch.Generator().manual_seed(0)))
        o = self.options
        widths = [probe.shape[1]] + [o.width] * o.depth
        self.hidden = nn.ModuleList(P2P(a, b, o.aggregation) for a, b in zip(widths[:-1], widths[1:]))
        self.head = P2P(widths[-1], channels, o.aggregation, activation=None)

    def trunk(self, context: Context) -> tuple[Tensor, Tensor]:
        """The head's output ``[B, channels, N, A_1..A_N]`` and the features' mask ``[B, N, A_max]``."""
        features, mask = self.sampler.payoff_features(context)
        h = features.to(self.head.linear.weight.dtype)
        for layer in self.hidden:
            h = layer(h, mask)
        return self.head(h, mask), mask


class PayoffGenerator(P2PStack):
    """P2P stack: ``context -> [B, N, A_1..A_N]`` (see module docstring)."""

    class Options(P2PStack.Options):
        output: Literal["identity", "softplus", "neg_softplus"] = "identity"
        output_scale: float = Field(1.0, gt=0, description="multiplies the last layer's output before the map")

    def __init__(self, sampler: ContextSampler, **options: Any) -> None:
        super().__init__(**options)
        self.build(sampler, 1)

    def forward(self, context: Context) -> Tensor:
        head, mask = self.trunk(context)
        raw = self.options.output_scale * head[:, 0]
        real = joint_mask(mask, raw.shape[2:]).unsqueeze(1)
        return torch.where(real, OUTPUT_MAPS[self.options.output](raw), torch.zeros_like(raw))


class LineGaugedGenerator(Configurable, nn.Module):
    """``context -> sign * x [B, N, A_1..A_N]`` with ``x >= 0``: payments (``sign = 1``) or taxes (``-1``).

    Adding to player ``p``'s payments any function of the others' actions
    ``a_{-p}`` changes no deviation gain, hence no equilibrium, only what is paid.
    A plain ``softplus(r)`` of a :class:`PayoffGenerator` output ``r`` lets a
    payment term in the loss drive that free level down until the softplus
    saturates and every payment and gradient dies. With ``normalize`` (default)
    the level is removed before the map::

        x_p(a) = softplus(r_p(a) - min_d r_p(d, a_{-p})) - log 2

    so every own-action line has a cell at 0 and ``x`` does not depend on the
    level of ``r``. Subclasses set ``sign``.
    """

    sign: ClassVar[float] = 1.0

    class Options(P2PStack.Options):
        output_scale: float = Field(1.0, gt=0, description="multiplies the last layer's output before the map")
        normalize: bool = Field(True, description="remove the free level: a 0 on every own-action line")

    def __init__(self, sampler: ContextSampler, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        inner = self.options.model_dump(exclude={"normalize"})
        self.payoff = PayoffGenerator(sampler, output="identity", **inner)

    @classmethod
    def output_map(cls, raw: Tensor, mask: Tensor, normalize: bool = True) -> Tensor:
        """``sign * x`` from a raw output ``raw [B, N, A_1..A_N]`` (``mask [B, N, A_max]``); 0 on padded cells.

        The map of :meth:`forward`, also used by per-instance optimisation on the same raw form.
        """
        real = joint_mask(mask, raw.shape[2:]).unsqueeze(1)
        if normalize:
            x = F.softplus(excess_over_line_minimum(raw, mask)) - math.log(2.0)
        else:
            x = F.softplus(raw)
        return torch.where(real, cls.sign * x, torch.zeros_like(x))

    def forward(self, context: Context) -> Tensor:
        head, mask = self.payoff.trunk(context)
        raw = self.payoff.options.output_scale * head[:, 0]
        return self.output_map(raw, mask, self.options.normalize)
