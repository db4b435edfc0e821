"""Message allocation: a follower with a private wanted item sends one of ``m`` messages; the leader allocates.

The setting (seed paper "simple allocation mechanism"): ``k`` items, one follower
whose type is the item it wants, drawn from a prior ``q`` over the items. It sends
a message ``mu`` in ``{1..m}``; the leader's mechanism is an allocation rule
``x(mu)``, a distribution over the items per message (the intervention). Follower
and leader both get 1 when the follower receives its item. So the follower of type
``t`` who sends ``mu`` gets ``x(mu)[t]`` and the leader's ex-ante value is
``sum_t q_t sum_mu sigma_t(mu) x(mu)[t]``. The best mechanism gives the ``m`` most
likely items one message each: its value is the sum of the ``m`` largest ``q_t``
(``min(m, k) / k`` for the uniform prior: 1/3, 2/3, 1 for ``k = 3``, ``m = 1, 2, 3``).

The followers' equilibrium is the eps-ME B-CCE of this one-player Bayesian game
(types = items, actions = messages), solved as its agent-normal form
(:mod:`did_core.bayesian`): one agent per item, ``m^k`` joint actions.

Context (batch ``B``, items padded to ``K``, messages padded to ``M``):
``prior [B, K]`` (0 on padded items), ``items [B, K]`` and ``messages [B, M]`` (real
ones first, bool), ``optimum [B]`` (the sum of the ``m`` largest priors).
Intervention ``x [B, M, K]``: one distribution over the real items per message
(rows of padded messages are ignored).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor

from did_core.bayesian import BayesianGames
from did_core.blocks import Equilibrium
from did_core.tasks import Context, ContextSampler, DesignObjective, Options

__all__ = ["AllocationSampler", "AllocationObjective", "allocation_games", "feasible_allocation", "optimum",
           "MAX_ITEMS", "MAX_MESSAGES"]

#: The most items and messages the sampler draws and the generator has feature slots for (the agent-normal form
#: has ``m^k`` joint actions, 4^8 = 65536 at most, the bound of :data:`did_core.bayesian.MAX_ANF_JOINT`).
MAX_ITEMS = 8
MAX_MESSAGES = 4


def optimum(prior: Tensor, messages: Tensor) -> Tensor:
    """The best mechanism's value ``[B]``: the sum of the ``m`` largest priors, ``prior [B, K]``, ``messages [B, M]``."""
    ranked = prior.sort(dim=1, descending=True).values
    m = messages.sum(dim=1, keepdim=True)
    return (ranked * (torch.arange(ranked.shape[1], device=prior.device).unsqueeze(0) < m)).sum(dim=1)


def feasible_allocation(context: Context, x: Tensor) -> Tensor:
    """``x [B, M, K]`` projected onto one simplex over the real items per message: negatives to 0, padded items to
    0, normalised; an all-zero row becomes uniform (the local polish searches without bounds)."""
    real = context["items"][:, None, : x.shape[2]].to(x.dtype)
    x = x.clamp_min(0) * real
    total = x.sum(dim=2, keepdim=True)
    uniform = real / real.sum(dim=2, keepdim=True)
    return torch.where(total > 0, x / total.clamp_min(1e-300), uniform)


def allocation_games(context: Context, x: Tensor) -> BayesianGames:
    """The follower's Bayesian game: one player, types = items, actions = messages; ``u(mu, t) = x(mu)[t]``
    (payoffs ``[B, 1, K, M]``), for a feasible ``x [B, M, K]``."""
    prior = context["prior"].to(x.dtype)
    return BayesianGames(x.transpose(1, 2).unsqueeze(1), prior.unsqueeze(1), context["messages"].unsqueeze(1),
                         context["items"].unsqueeze(1))


class AllocationSampler(ContextSampler):
    """Random instances: ``k ~ U{min_items..max_items}``, ``m ~ U{min_messages..min(k, max_messages)}``, the prior
    ``q ~ Dirichlet(concentration)`` over the ``k`` items (one generator serves every prior; the paper's is uniform)."""

    class Options(Options):
        min_items: int = Field(2, ge=1, le=MAX_ITEMS)
        max_items: int = Field(6, ge=1, le=MAX_ITEMS)
        min_messages: int = Field(1, ge=1, le=MAX_MESSAGES)
        max_messages: int = Field(3, ge=1, le=MAX_MESSAGES)
        concentration: float = Field(1.0, gt=0, le=1e6, description="Dirichlet concentration of the prior")

        @model_validator(mode="after")
        def _ranges(self) -> "AllocationSampler.Options":
            if self.min_items > self.max_items or self.min_messages > self.max_messages:
                raise ValueError("min_items <= max_items and min_messages <= max_messages are needed")
            if self.min_messages > self.max_items:
                raise ValueError("min_messages must be at most max_items")
            return self

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        k = torch.randint(o.min_items, o.max_items + 1, (batch,), generator=generator)
        top = torch.clamp(k, max=o.max_messages)
        m = o.min_messages + (torch.rand(batch, generator=generator) * (top - o.min_messages + 1)).floor().long()
        items = torch.arange(o.max_items).unsqueeze(0) < k.unsqueeze(1)
        messages = torch.arange(o.max_messages).unsqueeze(0) < m.unsqueeze(1)
        # Dirichlet as normalised Gamma draws: torch's Gamma sampler is the one that takes a torch.Generator
        gamma = torch._standard_gamma(torch.full((batch, o.max_items), o.concentration, dtype=torch.float64),
                                      generator=generator)
        gamma = gamma.clamp_min(1e-12) * items
        prior = (gamma / gamma.sum(dim=1, keepdim=True)).float()
        return {"prior": prior, "items": items, "messages": messages, "optimum": optimum(prior, messages)}

    def size_of(self, context: Context) -> Tensor:
        """The number of items ``k`` per context."""
        return context["items"].sum(dim=1)


class AllocationObjective(DesignObjective):
    """The leader's problem: maximise the probability that the follower gets its item (value in ``[0, 1]``);
    the bound is the best mechanism's value (:func:`optimum`), the baseline the uniform allocation."""

    minimize: ClassVar[bool] = False
    report_change: ClassVar[bool] = False
    metric_name: ClassVar[str] = "probability the follower gets its item"

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """The agent-normal form ``[B, K, M..M]`` (one agent per item) and its mask ``[B, K, M]``."""
        return allocation_games(context, feasible_allocation(context, intervention)).agent_normal_form()

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """``sum_s sigma(s) c(s)``, ``c(s) = sum_t q_t x(s_t)[t]`` on the agents' profiles ``s``; constant 0."""
        games = allocation_games(context, feasible_allocation(context, intervention))
        c = games.expectation(games.payoffs[:, 0])
        return c, c.new_zeros(c.shape[0])

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        c, const = self.linear_value(context, intervention.to(eq.sigma.dtype))
        return (c * eq.sigma).flatten(1).sum(dim=1) + const

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        value = self.value(context, intervention, eq)
        share = (value / context["optimum"].to(value.dtype).clamp_min(1e-12)).mean()
        return -value.mean(), {"value": float(value.mean().detach()), "share_of_optimum": float(share.detach())}

    def baseline_intervention(self, context: Context) -> Tensor:
        """The uniform allocation over the real items for every message ``[B, M, K]``."""
        real = context["items"].to(context["prior"].dtype)
        x = real / real.sum(dim=1, keepdim=True)
        return x.unsqueeze(1).expand(-1, context["messages"].shape[1], -1).contiguous()

    def bound(self, context: Context) -> Tensor:
        """The best mechanism's value (:func:`optimum`)."""
        return context["optimum"]

    def intervention_mask(self, context: Context) -> Tensor:
        """Real (message, item) entries ``[B, M, K]``."""
        return context["messages"].unsqueeze(2) & context["items"].unsqueeze(1)
