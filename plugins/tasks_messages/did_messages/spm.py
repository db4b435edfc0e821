"""The sequential price mechanism with messages (muSPM): two agents, one item, messages first, then posted prices.

Setting (seed paper, after Agrawal, Sethuraman & Zhang 2020, Example 1): agent ``i``
has a private value ``v_i`` drawn from a finite distribution (independent). First
each agent sends a message in ``{0..m-1}`` (simultaneously). Then the mechanism,
depending on the message profile ``(mu_1, mu_2)``, visits agent 1 first with
probability ``q`` (else agent 2 first) and posts the visited agent its price
(``p_1`` to agent 1, ``p_2`` to agent 2) while the item is unsold; a visited agent
buys iff its value exceeds its price (posting rounds are truthful: only messages
are strategic). The intervention is ``(q, p_1, p_2)`` per message profile, the
designer minimises the expected welfare loss ``max(v_1, v_2) - v_winner``
(``v_winner = 0`` when nobody buys).

Given the profile and the values, with ``b_i = 1[v_i > p_i]``::

    u_1 = b_1 (v_1 - p_1) (q + (1 - q)(1 - b_2))          agent 1 buys if visited while the item is left
    u_2 = b_2 (v_2 - p_2) ((1 - q) + q (1 - b_1))
    welfare = b_1 v_1 (q + (1 - q)(1 - b_2)) + b_2 v_2 ((1 - q) + q (1 - b_1))

The agents' messages form a Bayesian game (types = values, actions = messages);
its eps-ME B-CCE is solved as the agent-normal form (:mod:`did_core.bayesian`).
The buying decision is a step in the price: its values are exact, and for
training its gradient is the sigmoid's of temperature ``temperature`` (a
straight-through estimator), so prices learn where to sit between the values.

The paper's instance: ``v_1`` is ``1/2`` or ``1/(2e)`` with probabilities ``1 - e, e``
(``e = 0.2``: 0.5 or 2.5) and ``v_2`` is 0 or 1 with probability 1/2 each. Without
messages the best mechanism loses 0.15 (visit agent 2 first, price 0 to both: when
``v_1 = 2.5`` and ``v_2 = 1`` agent 2 buys); with two messages nothing need be lost.

Context (batch ``B``, types padded to ``T``, messages padded to ``M``): ``values [B, 2, T]``,
``prior [B, 2, T]`` (0 on padded types), ``types [B, 2, T]`` and ``messages [B, M]`` (real
first, bool). Intervention ``[B, M, M, 3]``: ``[..., 0]`` = ``q``, ``[..., 1]`` = ``p_1``,
``[..., 2]`` = ``p_2`` at message profile ``(mu_1, mu_2)``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor

from did_core.bayesian import BayesianGames
from did_core.blocks import Equilibrium
from did_core.tasks import Context, ContextSampler, DesignObjective, Options

__all__ = ["SPMSampler", "SPMObjective", "spm_games", "feasible_mechanism", "outcomes", "paper_instance",
           "price_cap", "MAX_SPM_MESSAGES"]

#: The most messages the sampler draws and the generator has output slots for.
MAX_SPM_MESSAGES = 3


def paper_instance(e: float = 0.2, messages: int = 2) -> Context:
    """The seed paper's instance as a context of one: ``v_1`` in ``{1/2, 1/(2e)}`` w.p. ``{1 - e, e}``, ``v_2`` in
    ``{0, 1}`` w.p. ``{1/2, 1/2}``, ``messages`` messages per agent."""
    return {"values": torch.tensor([[[0.5, 0.5 / e], [0.0, 1.0]]]),
            "prior": torch.tensor([[[1 - e, e], [0.5, 0.5]]]),
            "types": torch.ones(1, 2, 2, dtype=torch.bool),
            "messages": torch.ones(1, messages, dtype=torch.bool)}


def price_cap(context: Context) -> Tensor:
    """The highest price worth posting ``[B]``: 1.2 times the largest value (above every value, nobody buys)."""
    return 1.2 * (context["values"] * context["types"]).flatten(1).amax(dim=1).clamp_min(1e-6)


def feasible_mechanism(x: Tensor) -> Tensor:
    """``x [B, M, M, 3]`` with ``q`` clipped to ``[0, 1]`` and prices to ``>= 0`` (the local polish searches without
    bounds)."""
    return torch.cat([x[..., :1].clamp(0, 1), x[..., 1:].clamp_min(0)], dim=-1)


def _buys(value: Tensor, price: Tensor, temperature: float) -> Tensor:
    """``1[value > price]``, with the gradient of ``sigmoid((value - price) / temperature)`` (straight-through)."""
    hard = (value > price).to(price.dtype)
    if temperature <= 0 or not price.requires_grad:
        return hard
    soft = torch.sigmoid((value - price) / temperature)
    return hard + soft - soft.detach()


def outcomes(context: Context, x: Tensor, temperature: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Agent 1's and agent 2's utility and the welfare loss at every type and message profile, each
    ``[B, T, T, M, M]`` (axes: agent 1's type, agent 2's type, agent 1's message, agent 2's message), for a feasible
    ``x [B, M, M, 3]``."""
    values = context["values"].to(x.dtype)
    v1 = values[:, 0].view(-1, values.shape[2], 1, 1, 1)
    v2 = values[:, 1].view(-1, 1, values.shape[2], 1, 1)
    q, p1, p2 = (x[..., i].unsqueeze(1).unsqueeze(1) for i in range(3))  # [B, 1, 1, M, M]
    b1, b2 = _buys(v1, p1, temperature), _buys(v2, p2, temperature)
    gets1 = b1 * (q + (1 - q) * (1 - b2))
    gets2 = b2 * ((1 - q) + q * (1 - b1))
    loss = torch.maximum(v1, v2) - gets1 * v1 - gets2 * v2
    return gets1 * (v1 - p1), gets2 * (v2 - p2), loss


def spm_games(context: Context, x: Tensor, temperature: float = 0.0) -> tuple[BayesianGames, Tensor]:
    """The agents' Bayesian game (payoffs ``[B, 2, T, T, M, M]``) and the welfare loss ``[B, T, T, M, M]``."""
    u1, u2, loss = outcomes(context, x, temperature)
    games = BayesianGames(torch.stack([u1, u2], dim=1), context["prior"].to(x.dtype),
                          context["messages"].unsqueeze(1).expand(-1, 2, -1), context["types"])
    return games, loss


class SPMSampler(ContextSampler):
    """The paper's family around its instance: ``e ~ U[min_e, max_e]`` gives agent 1 the values ``{1/2, 1/(2e)}`` with
    probabilities ``{1 - e, e}``; agent 2 has ``{0, 1}`` with ``P(1) ~ U[min_r, max_r]``; ``messages`` messages each."""

    class Options(Options):
        min_e: float = Field(0.1, gt=0, lt=1)
        max_e: float = Field(0.3, gt=0, lt=1)
        min_r: float = Field(0.3, gt=0, lt=1)
        max_r: float = Field(0.7, gt=0, lt=1)
        messages: int = Field(2, ge=1, le=MAX_SPM_MESSAGES)

        @model_validator(mode="after")
        def _ranges(self) -> "SPMSampler.Options":
            if self.min_e > self.max_e or self.min_r > self.max_r:
                raise ValueError("min_e <= max_e and min_r <= max_r are needed")
            return self

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        e = o.min_e + (o.max_e - o.min_e) * torch.rand(batch, generator=generator)
        r = o.min_r + (o.max_r - o.min_r) * torch.rand(batch, generator=generator)
        values = torch.stack([torch.stack([torch.full_like(e, 0.5), 0.5 / e], dim=1),
                              torch.stack([torch.zeros_like(r), torch.ones_like(r)], dim=1)], dim=1)
        prior = torch.stack([torch.stack([1 - e, e], dim=1), torch.stack([1 - r, r], dim=1)], dim=1)
        return {"values": values, "prior": prior, "types": torch.ones(batch, 2, 2, dtype=torch.bool),
                "messages": torch.ones(batch, o.messages, dtype=torch.bool)}


class SPMObjective(DesignObjective):
    """The designer's problem: minimise the expected welfare loss (0 is the best possible; the baseline visits
    agent 2 first at price 0 for both agents whatever the messages, the paper's best mechanism without messages)."""

    minimize: ClassVar[bool] = True
    report_change: ClassVar[bool] = False
    metric_name: ClassVar[str] = "welfare loss"

    class Options(Options):
        temperature: float = Field(1.0, gt=0, le=10, description="temperature of the sigmoid whose gradient the "
                                   "buying decisions take in training (their values are exact)")

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """The agent-normal form ``[B, 2T, M..M]`` (agents: agent 1's types, then agent 2's) and mask ``[B, 2T, M]``."""
        games, _ = spm_games(context, feasible_mechanism(intervention), self.options.temperature)
        return games.agent_normal_form()

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """The expected welfare loss ``sum_s sigma(s) c(s)`` on the agents' profiles ``s``; constant 0."""
        games, loss = spm_games(context, feasible_mechanism(intervention), self.options.temperature)
        c = games.expectation(loss)
        return c, c.new_zeros(c.shape[0])

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        c, const = self.linear_value(context, intervention.to(eq.sigma.dtype))
        return (c * eq.sigma).flatten(1).sum(dim=1) + const

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        value = self.value(context, intervention, eq).mean()
        return value, {"welfare_loss": float(value.detach())}

    def baseline_intervention(self, context: Context) -> Tensor:
        """Visit agent 2 first at price 0 for both agents, whatever the messages ``[B, M, M, 3]``."""
        m = context["messages"].shape[1]
        return context["values"].new_zeros(context["values"].shape[0], m, m, 3)

    def bound(self, context: Context) -> Tensor:
        """No mechanism loses less than nothing."""
        return context["values"].new_zeros(context["values"].shape[0])

    def intervention_mask(self, context: Context) -> Tensor:
        """Real message profiles ``[B, M, M, 3]``."""
        real = context["messages"].unsqueeze(2) & context["messages"].unsqueeze(1)
        return real.unsqueeze(-1).expand(-1, -1, -1, 3)
