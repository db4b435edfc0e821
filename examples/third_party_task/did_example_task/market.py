"""A Cournot market with a polluting industry: firms choose how much to produce, a regulator taxes emissions.

Market (a context; ``N`` firms, firm ``i`` choosing among ``m_i ~ U{min_levels..max_levels}`` quantity
levels, padded to ``M = max_levels``):

* the price is ``P = a - Q`` for a total quantity ``Q = sum_i q_i``, ``a ~ U[1, 2]``;
* firm ``i`` produces one of ``q_i = 0, k_i / (m_i - 1), .., k_i`` (capacity ``k_i = a / N``, so the price
  stays >= 0) at a unit cost ``c_i ~ a U[0, 0.3]``; its profit is ``q_i (P - c_i)``;
* every unit firm ``i`` produces emits ``e_i ~ U[0, 1]``, and each unit of emissions costs society
  ``d ~ a U[0.5, 2]``.

Welfare at a joint action ``a`` is consumers' and producers' surplus minus the damage,
``W(a) = a Q - Q^2 / 2 - sum_i (c_i + d e_i) q_i``. Firms with market power produce too little for it, and
firms that pollute too much: the best tax on emissions lies below the damage ``d`` (a "second-best"
Pigouvian tax, sometimes a subsidy).

Intervention: a tax rate ``t_i`` per unit of emissions for each firm, ``x [B, N]`` (a negative rate is a
subsidy); the induced game pays firm ``i`` its profit minus ``t_i e_i q_i``. Taxes are transfers, so the
designer's value is the expected welfare ``E_sigma W`` (higher is better; the metric is its change against no
tax), and no tax beats the best joint action's welfare (:meth:`WelfareObjective.bound`).

Shapes: ``quantities, mask [B, N, M]``, ``demand, damage [B]``, ``costs, emissions [B, N]``,
``profits [B, N, M..]`` (``N`` quantity axes), ``welfare [B, M..]``; padded levels carry zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.games import joint_mask
from did_core.tasks import Context, ContextSampler, DesignObjective, Options

__all__ = ["MarketSampler", "WelfareObjective", "market", "own_action", "tax_base"]


def own_action(values: Tensor, sizes: Sequence[int]) -> Tensor:
    """``values [B, N, M]`` per firm and level as a payoff-shaped ``[B, N, *sizes]``: entry ``[b, i, a]`` is
    ``values[b, i, a_i]`` (firm ``i``'s quantity axis has ``sizes[i] <= M`` levels)."""
    batch, n = values.shape[:2]
    return torch.stack([values[:, i, :sizes[i]].reshape(batch, *[sizes[i] if p == i else 1 for p in range(n)])
                        .expand(batch, *sizes) for i in range(n)], dim=1)


def market(context: Context) -> tuple[Tensor, Tensor]:
    """The untaxed game of the markets of ``context``: ``profits [B, N, M..]`` and ``welfare [B, M..]``, zero on
    padded joint actions (from the keys ``quantities``, ``mask``, ``demand``, ``costs``, ``emissions``, ``damage``)."""
    q = own_action(context["quantities"], [context["quantities"].shape[2]] * context["quantities"].shape[1])
    per_firm = (*context["costs"].shape, *[1] * (q.dim() - 2))  # [B, N, 1..]: a firm's number at every joint action
    total = q.sum(dim=1)
    demand = context["demand"].view(per_firm[:1] + per_firm[2:])
    profits = q * (demand - total).unsqueeze(1) - q * context["costs"].view(per_firm)
    unit = context["costs"] + context["damage"].unsqueeze(1) * context["emissions"]  # cost and damage per unit
    welfare = demand * total - total.pow(2) / 2 - (q * unit.view(per_firm)).sum(dim=1)
    real = joint_mask(context["mask"], q.shape[2:])
    return profits * real.unsqueeze(1), welfare * real


def tax_base(context: Context) -> Tensor:
    """The emissions ``e_i q_i(a_i)`` each firm is taxed on, shaped as the profits (zero on padded joint actions)."""
    base = own_action(context["quantities"] * context["emissions"].unsqueeze(2), context["profits"].shape[2:])
    return base * joint_mask(context["mask"], base.shape[2:]).unsqueeze(1)


class MarketSampler(ContextSampler):
    """Random markets of ``firms`` firms with ``min_levels..max_levels`` quantity levels each (padded, masked)."""

    class Options(Options):
        firms: int = Field(2, ge=2, le=3)
        min_levels: int = Field(2, ge=2)
        max_levels: int = Field(4, ge=2, le=12)

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"quick": {"max_levels": 4}, "paper": {"max_levels": 8}}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.min_levels > self.options.max_levels:
            raise ValueError(f"invalid options for MarketSampler: min_levels {self.options.min_levels} > "
                             f"max_levels {self.options.max_levels}")

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options

        def uniform(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=generator)

        counts = torch.randint(o.min_levels, o.max_levels + 1, (batch, o.firms, 1), generator=generator)
        levels = torch.arange(o.max_levels)
        mask = levels < counts
        demand = 1 + uniform(batch)
        capacity = demand.view(-1, 1, 1) / o.firms
        context = {"quantities": capacity * levels / (counts - 1) * mask, "mask": mask, "demand": demand,
                   "costs": 0.3 * demand.unsqueeze(1) * uniform(batch, o.firms), "emissions": uniform(batch, o.firms),
                   "damage": demand * (0.5 + 1.5 * uniform(batch))}
        context["profits"], context["welfare"] = market(context)
        return context

    def size_of(self, context: Context) -> Tensor:
        """The quantity levels of the firm with the most."""
        return context["mask"].sum(dim=2).amax(dim=1)

    def extents(self, context: Context) -> Tensor:
        """Each firm's quantity levels ``[B, N]``."""
        return context["mask"].sum(dim=2)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        firms = range(self.options.firms)
        return {"quantities": {2: tuple(firms)}, "mask": {2: tuple(firms)},
                "profits": {2 + i: (i,) for i in firms}, "welfare": {1 + i: (i,) for i in firms}}

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """``[B, 3, N, M..]``: the profits, the welfare (the same for every firm) and the emissions taxed."""
        profits = context["profits"]
        return torch.stack([profits, context["welfare"].unsqueeze(1).expand_as(profits), tax_base(context)],
                           dim=1), context["mask"]


class WelfareObjective(DesignObjective):
    """Maximise the expected welfare ``E_sigma W`` with emission taxes ``x [B, N]`` (see the module docstring)."""

    minimize: ClassVar[bool] = False
    report_change: ClassVar[bool] = True
    metric_name: ClassVar[str] = "welfare change"

    def induce(self, context: Context, x: Tensor) -> tuple[Tensor, Tensor]:
        view = (*x.shape, *[1] * (context["profits"].dim() - 2))
        return context["profits"].to(x.dtype) - x.view(view) * tax_base(context).to(x.dtype), context["mask"]

    def value(self, context: Context, x: Tensor, eq: Equilibrium) -> Tensor:
        """The expected welfare ``[B]``."""
        return (eq.sigma * context["welfare"].to(eq.sigma.dtype)).flatten(1).sum(dim=1)

    def loss(self, context: Context, x: Tensor, eq: Equilibrium, progress: float) -> tuple[Tensor, dict[str, float]]:
        welfare = self.value(context, x, eq).mean()
        return -welfare, {"welfare": float(welfare.detach()), "mean_rate": float(x.detach().mean())}

    def bound(self, context: Context) -> Tensor:
        """The welfare of the best real joint action ``[B]``: no distribution of play has more."""
        welfare = context["welfare"]
        real = joint_mask(context["mask"], welfare.shape[1:])
        return torch.where(real, welfare, torch.full_like(welfare, -torch.inf)).flatten(1).amax(dim=1)

    def baseline_intervention(self, context: Context) -> Tensor:
        """No tax: zeros ``[B, N]``."""
        return torch.zeros_like(context["costs"])
