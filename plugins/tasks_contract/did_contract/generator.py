"""The contract generator: an equivariant network from a contract problem to contracts (docs/mathematics.md, 5 and 6.1).

Input, per context, five payoff-outcome channels ``[B, 5, N, A_1..A_N, M]``:
costs ``c_i(a)`` (broadcast over outcomes), transitions ``P(w|a)`` and value
terms ``P(w|a) v(w)`` (broadcast over agents), values ``v(w)`` (broadcast over
agents and actions) and the expected value ``sum_w P(w|a) v(w)`` of each joint
action (broadcast over agents and outcomes); with ``size_features`` two more,
``1 / n_i`` (agent ``i``'s action count, on its slice) and ``1 / m`` (the outcome
count), which no pool of the layers can see: how much a contract can do depends
on the size (on the paper profile nearly all of the gain is in games of 2..5
actions). Layers: ``depth`` PO2PO, one PO2O
collapsing the action axes, ``depth_outcome`` O2O, and an O2O head to one
channel through softplus (limited liability): contracts ``[B, N, M]``, exactly
0 on padded outcomes.

Two choices that made training work (measured on the quick profile, see the
plugin README):

* ``shift_min`` (default on): each agent's smallest payment over real outcomes
  is subtracted. A payment made on every outcome adds a constant to that
  agent's payoffs, which changes no incentive (and no relative epsilon): it is
  pure cost. Without the shift the payment term of the loss first removes that
  constant by driving the head's output into softplus' flat region, where the
  incentive-carrying differences between outcomes die too.
* ``init_gain`` (default 1.5): linear weights ``~ N(0, gain^2 / fan_in)``. The
  layers' default initialisation shrinks activations layer after layer, so an
  untrained generator pays almost the same on every outcome; such a flat
  contract changes no behaviour and gives the generator no gradient to learn from
  (the width-64, depth-3 generator paid exactly 0 from the first step and never moved).

Permuting an agent's actions leaves the contracts unchanged; permuting agents or
outcomes permutes them the same way. Parameters depend on the width only, so
one network serves every number of actions and outcomes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from did_core.games import joint_mask
from did_core.nn import O2O, PO2O, PO2PO
from did_core.tasks import Configurable, Context, ContextSampler, Options
from did_contract.task import incentive_part

__all__ = ["ContractGenerator", "contract_features"]

IN_CHANNELS = 5
SIZE_CHANNELS = 2


def contract_features(context: Context, value_scale: float = 1.0, size_features: bool = False
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """Generator input ``[B, C, N, A.., M]`` (``C`` = 5, or 7 with ``size_features``; 0 on padded entries),
    action mask, outcome mask.

    Values enter multiplied by ``value_scale`` (bringing them to the costs' scale helps training).
    """
    costs, transitions, values = context["costs"], context["transitions"], context["values"]
    mask, outcome_mask = context["mask"], context["outcome_mask"]
    batch, n_players = costs.shape[:2]
    sizes = tuple(costs.shape[2:])
    m = values.shape[1]
    shape = (batch, n_players, *sizes, m)
    real = (joint_mask(mask, sizes).reshape(batch, 1, *sizes, 1)
            & outcome_mask.reshape(batch, 1, *[1] * n_players, m))
    p = transitions.unsqueeze(1)
    v = value_scale * values.reshape(batch, 1, *[1] * n_players, m)
    expected = (p * v).sum(dim=-1, keepdim=True)  # [B, 1, A.., 1]: sum_w P(w|a) v(w)
    channels = [costs.unsqueeze(-1), p, v, p * v, expected]
    if size_features:
        counts = mask.sum(dim=2).to(costs.dtype).clamp_min(1)  # [B, N]
        outcomes = outcome_mask.sum(dim=1).to(costs.dtype).clamp_min(1)  # [B]
        channels += [(1 / counts).reshape(batch, n_players, *[1] * (n_players + 1)),
                     (1 / outcomes).reshape(batch, 1, *[1] * (n_players + 1))]
    features = torch.stack([c.expand(shape) for c in channels], dim=1)
    return features * real.unsqueeze(1), mask, outcome_mask


class ContractGenerator(Configurable, nn.Module):
    """PO2PO x depth -> PO2O -> O2O x depth_outcome -> O2O head -> softplus (see module docstring)."""

    class Options(Options):
        width: int = Field(64, ge=1)
        depth: int = Field(2, ge=1, description="hidden PO2PO layers")
        depth_outcome: int = Field(1, ge=0, description="hidden O2O layers after the PO2O collapse")
        aggregation: Literal["meanvar", "mean", "max"] = "meanvar"
        output_scale: float = Field(1.0, gt=0, description="multiplies the head's output before softplus")
        init_bias: float = Field(0.0, description="initial bias of the head (softplus(init_bias) is the initial pay)")
        value_scale: float = Field(1.0, gt=0, description="multiplies the values fed to the network")
        init_gain: float | None = Field(1.5, gt=0, description="linear weights ~ N(0, gain^2 / fan_in), zero bias; "
                                        "None keeps the layers' default initialisation")
        shift_min: bool = Field(True, description="subtract each agent's smallest payment over real outcomes")
        softplus: bool = Field(True, description="the head's output through softplus; off: the output itself, "
                               "less each agent's smallest (shift_min), never flat where it is wrong")
        size_features: bool = Field(False, description="two more input channels: 1 / the agent's action count "
                                    "and 1 / the outcome count")

        @model_validator(mode="after")
        def _limited_liability(self) -> "ContractGenerator.Options":
            if not (self.softplus or self.shift_min):
                raise ValueError("softplus false needs shift_min true: payments must not be negative")
            return self

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"width": 32, "depth": 2, "depth_outcome": 1},
        "paper": {"width": 64, "depth": 3, "depth_outcome": 2},
    }

    def __init__(self, sampler: ContextSampler | None = None, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        o = self.options
        widths = [IN_CHANNELS + (SIZE_CHANNELS if o.size_features else 0)] + [o.width] * o.depth
        self.payoff_outcome = nn.ModuleList(PO2PO(a, b, o.aggregation) for a, b in zip(widths[:-1], widths[1:]))
        self.collapse = PO2O(o.width, o.width, o.aggregation)
        self.outcome = nn.ModuleList(O2O(o.width, o.width, o.aggregation) for _ in range(o.depth_outcome))
        self.head = O2O(o.width, 1, o.aggregation, activation=None)
        with torch.no_grad():
            if o.init_gain is not None:
                # See the module docstring: keep activations (and contract differences) alive.
                for module in self.modules():
                    if isinstance(module, nn.Linear):
                        nn.init.normal_(module.weight, std=o.init_gain / math.sqrt(module.weight.shape[1]))
                        nn.init.zeros_(module.bias)
            self.head.linear.bias.fill_(o.init_bias)

    def head_output(self, context: Context) -> Tensor:
        """The head's output ``[B, C, N, M]`` (``C`` its channels; 0 on padded outcomes), before any activation."""
        features, mask, outcome_mask = contract_features(context, self.options.value_scale,
                                                         self.options.size_features)
        h = features.to(self.head.linear.weight.dtype)
        for layer in self.payoff_outcome:
            h = layer(h, mask, outcome_mask)
        z = self.collapse(h, mask, outcome_mask)
        for layer in self.outcome:
            z = layer(z, outcome_mask)
        return self.head(z, outcome_mask)

    def forward(self, context: Context) -> Tensor:
        """Contracts ``[B, N, M]`` (>= 0; 0 on padded outcomes) for a batch of contexts."""
        raw = self.options.output_scale * self.head_output(context)[:, 0]
        pay = F.softplus(raw) if self.options.softplus else raw
        if self.options.shift_min:
            return incentive_part(pay, context["outcome_mask"])
        return torch.where(context["outcome_mask"].to(torch.bool).unsqueeze(1), pay, torch.zeros_like(raw))
