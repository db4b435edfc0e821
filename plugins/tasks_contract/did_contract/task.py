"""Multi-agent contract design: pay agents per observed outcome to steer their equilibrium (docs/mathematics.md, 6.1).

A principal hires ``N`` agents. Each agent ``i`` picks one of its ``n_i`` actions;
the joint action ``a`` costs agent ``i`` ``c_i(a)`` and produces an outcome
``w ~ P(. | a)`` among ``m`` outcomes, worth ``v(w)`` to the principal, who sees
only the outcome. A contract pays agent ``i`` ``t_i(w) >= 0`` (limited liability).

* Induced game: ``u_i(a) = -c_i(a) + sum_w P(w|a) t_i(w)``.
* Principal's utility: ``U(sigma, t) = sum_a sigma(a) sum_w P(w|a) (v(w) - sum_i t_i(w))``.
* Training loss: ``-(sum_a sigma P v - lam sum_a sigma P sum_i t)`` with ``lam``
  ramped linearly from ``lam_start`` to 1 over the first ``ramp`` fraction of
  training (starting at 1 collapses the generator to zero contracts).
* Metric: ``U(sigma*(t), t) - U(sigma*(0), 0)``; baseline: no contract.
* Limited liability is enforced by the objective too: negative entries of an
  intervention (the local polish searches without bounds) count as 0.

Shapes (batch ``B``, players ``N``, padded action count ``A``, padded outcome
count ``M``): a context holds ``costs [B, N, A..A]``, ``transitions [B, A..A, M]``,
``values [B, M]``, ``mask [B, N, A]`` (real actions) and ``outcome_mask [B, M]``
(real outcomes). Padded entries are 0. A contract is ``[B, N, M]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.games import joint_mask
from did_core.tasks import Context, ContextSampler, DesignObjective, Options, RampedPenalty

__all__ = [
    "ContractSampler",
    "ContractObjective",
    "induced_games",
    "outcome_distribution",
    "principal_utility",
    "payment_weight",
    "payment_unit",
    "real_range",
    "incentive_part",
]


class ContractSampler(ContextSampler):
    """Random contract-design problems (docs/mathematics.md, 6.1), padded to ``max_actions`` and ``max_outcomes``.

    Per context: action counts ``n ~ U{min_actions..max_actions}`` (one draw shared
    by every agent when ``same_actions``, else one per agent), ``m ~
    U{min_outcomes..max_outcomes}``; costs ``c_i(a) ~ U[cost_low, cost_high]`` per
    agent and real joint action; ``P(. | a) ~ Dirichlet(1)`` over the real outcomes;
    values ``v(w) ~ U[value_low, value_high]`` per real outcome. Values must
    outweigh costs (docs/mathematics.md, 6.1: with values on the costs' scale contracts do not pay).
    """

    class Options(Options):
        n_players: int = Field(2, ge=1, le=4)
        min_actions: int = Field(2, ge=1)
        max_actions: int = Field(16, ge=1, le=32)
        same_actions: bool = Field(True, description="every agent has the same action count")
        min_outcomes: int = Field(2, ge=1)
        max_outcomes: int = Field(10, ge=1, le=64)
        cost_low: float = 0.0
        cost_high: float = 1.0
        value_low: float = 0.0
        value_high: float = 10.0

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"min_actions": 2, "max_actions": 4, "min_outcomes": 2, "max_outcomes": 4},
        "paper": {"min_actions": 2, "max_actions": 16, "min_outcomes": 2, "max_outcomes": 10},
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        for low, high in (("min_actions", "max_actions"), ("min_outcomes", "max_outcomes"),
                          ("cost_low", "cost_high"), ("value_low", "value_high")):
            if getattr(o, low) > getattr(o, high):
                raise ValueError(f"invalid options for ContractSampler: {low} {getattr(o, low)} "
                                 f"> {high} {getattr(o, high)}")

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        n_players, a_max, m_max = o.n_players, o.max_actions, o.max_outcomes
        sizes = [a_max] * n_players
        shared = 1 if o.same_actions else n_players
        counts = torch.randint(o.min_actions, a_max + 1, (batch, shared), generator=generator)
        mask = torch.arange(a_max).view(1, 1, -1) < counts.expand(batch, n_players).unsqueeze(-1)
        outcomes = torch.randint(o.min_outcomes, m_max + 1, (batch,), generator=generator)
        outcome_mask = torch.arange(m_max).view(1, -1) < outcomes.unsqueeze(1)
        jm = joint_mask(mask, sizes)
        costs = o.cost_low + (o.cost_high - o.cost_low) * torch.rand(batch, n_players, *sizes, generator=generator)
        costs = costs * jm.unsqueeze(1)
        # Dirichlet(1) over the real outcomes of every real joint action: normalised exponentials.
        exponential = -torch.log(torch.rand(batch, *sizes, m_max, generator=generator).clamp_min(1e-12))
        weights = exponential * outcome_mask.view(batch, *[1] * n_players, m_max) * jm.unsqueeze(-1)
        transitions = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-30)
        values = o.value_low + (o.value_high - o.value_low) * torch.rand(batch, m_max, generator=generator)
        values = values * outcome_mask
        return {"costs": costs, "transitions": transitions, "values": values,
                "mask": mask, "outcome_mask": outcome_mask}

    def size_of(self, context: Context) -> Tensor:
        """The largest action count of any agent."""
        return context["mask"].sum(dim=2).amax(dim=1)

    def extents(self, context: Context) -> Tensor:
        """Each agent's action count and the outcome count ``[B, N + 1]``."""
        return torch.cat([context["mask"].sum(dim=2), context["outcome_mask"].sum(dim=1, keepdim=True)], dim=1)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        n = self.options.n_players
        players = tuple(range(n))
        return {
            "costs": {2 + p: (p,) for p in players},
            "transitions": {**{1 + p: (p,) for p in players}, 1 + n: (n,)},
            "values": {1: (n,)},
            "mask": {2: players},
            "outcome_mask": {1: (n,)},
        }


def induced_games(context: Context, contracts: Tensor) -> Tensor:
    """``u_i(a) = -c_i(a) + sum_w P(w|a) t_i(w)``: ``[B, N, A..]`` from contracts ``[B, N, M]``."""
    costs, transitions = context["costs"], context["transitions"]
    dtype = torch.promote_types(contracts.dtype, costs.dtype)
    n_players = costs.shape[1]
    p = transitions.to(dtype).unsqueeze(1)  # [B, 1, A.., M]
    t = contracts.to(dtype).reshape(contracts.shape[0], n_players, *[1] * n_players, contracts.shape[-1])
    games = -costs.to(dtype) + (p * t).sum(dim=-1)
    jm = joint_mask(context["mask"], games.shape[2:]).unsqueeze(1)
    return games * jm


def outcome_distribution(context: Context, sigma: Tensor) -> Tensor:
    """``q(w) = sum_a sigma(a) P(w|a)``: ``[B, M]`` from a joint ``sigma [B, A..]``."""
    transitions = context["transitions"].to(sigma.dtype)
    return (sigma.unsqueeze(-1) * transitions).flatten(1, -2).sum(dim=1)


def principal_utility(context: Context, contracts: Tensor, sigma: Tensor) -> Tensor:
    """``U(sigma, t) = sum_w q(w) (v(w) - sum_i t_i(w))`` per context ``[B]``."""
    q = outcome_distribution(context, sigma)
    net = context["values"].to(q.dtype) - contracts.to(q.dtype).sum(dim=1)
    return (q * net).sum(dim=1)


def incentive_part(contracts: Tensor, outcome_mask: Tensor) -> Tensor:
    """Contracts ``[B, N, M]`` less each agent's smallest payment over the real outcomes, 0 on padded outcomes: the
    part that carries incentives (a payment made on every outcome adds a constant to the agent's payoffs, which
    changes no equilibrium) at the least cost."""
    real = outcome_mask.to(torch.bool).unsqueeze(1)
    low = torch.where(real, contracts, torch.full_like(contracts, torch.inf)).amin(dim=-1, keepdim=True)
    return torch.where(real, contracts - low, torch.zeros_like(contracts))


def real_range(x: Tensor, real: Tensor) -> Tensor:
    """``max - min`` of ``x [B, ...]`` over its ``real`` entries, per context ``[B]`` (0 where none is real)."""
    flat, keep = x.flatten(1), real.expand_as(x).flatten(1)
    high = torch.where(keep, flat, -torch.inf).amax(dim=1)
    low = torch.where(keep, flat, torch.inf).amin(dim=1)
    return torch.where(keep.any(dim=1), high - low, torch.zeros_like(high))


def payment_unit(context: Context) -> Tensor:
    """The ascent's unit of payment per context ``[B]``: the largest spread ``max_a c_i(a) - min_a c_i(a)`` of any
    agent's costs over the real joint actions (what a contract may have to make up for), else a tenth of the
    value span, else 1."""
    costs = context["costs"].double()
    n_agents = costs.shape[1]
    real = joint_mask(context["mask"], costs.shape[2:])
    cost = torch.stack([real_range(costs[:, i], real) for i in range(n_agents)], dim=1).amax(dim=1)
    value = real_range(context["values"].double(), context["outcome_mask"])
    return torch.where(cost > 0, cost, torch.where(value > 0, value / 10, torch.ones_like(value)))


def payment_weight(progress: float, lam_start: float, ramp: float) -> float:
    """``lam``: linear from ``lam_start`` at ``progress = 0`` to 1 at ``progress = ramp``, then 1 (the weight
    of :class:`ContractObjective` with these options)."""
    return ContractObjective.Options(lam_start=lam_start, ramp=ramp).weight(progress)


class ContractObjective(DesignObjective):
    """The principal's problem: maximise ``U`` over contracts (see the module docstring)."""

    class Options(RampedPenalty):
        #: The payments' final weight is 1 (the principal's utility), no option: ``lam`` given is refused.
        lam: ClassVar[float] = 1.0
        lam_start: float = Field(0.1, ge=0, le=1, description="payment weight at the start of training")
        ramp: float = Field(0.5, ge=0, le=1, description="fraction of training over which lam reaches 1")

    minimize: ClassVar[bool] = False
    report_change: ClassVar[bool] = True
    metric_name: ClassVar[str] = "utility change"

    @staticmethod
    def feasible(intervention: Tensor) -> Tensor:
        """Limited liability: negative payments (e.g. from an unconstrained polish) count as 0."""
        return intervention.clamp_min(0.0)

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        return induced_games(context, self.feasible(intervention)), context["mask"]

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        return principal_utility(context, self.feasible(intervention), eq.sigma)

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """``U = sum_a sigma(a) c(a)``, ``c(a) = sum_w P(w|a) (v(w) - sum_i t_i(w))``: ``c [B, A..]``, constant 0."""
        transitions = context["transitions"]
        dtype = torch.promote_types(intervention.dtype, transitions.dtype)
        net = context["values"].to(dtype) - self.feasible(intervention).to(dtype).sum(dim=1)  # [B, M]
        view = (net.shape[0], *[1] * (transitions.dim() - 2), net.shape[1])
        coefficients = (transitions.to(dtype) * net.reshape(view)).sum(dim=-1)
        return coefficients, coefficients.new_zeros(coefficients.shape[0])

    def context_loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
                     ) -> tuple[Tensor, dict[str, float]]:
        """``-(E v - lam E sum_i t)`` per context ``[B]``, and the batch means of ``lam``, earned, paid, utility."""
        lam = self.options.weight(progress)
        q = outcome_distribution(context, eq.sigma)
        earned = (q * context["values"].to(q.dtype)).sum(dim=1)
        paid = (q * self.feasible(intervention).to(q.dtype).sum(dim=1)).sum(dim=1)
        return -(earned - lam * paid), {"lam": lam, "earned": float(earned.detach().mean()),
                                        "paid": float(paid.detach().mean()),
                                        "utility": float((earned - paid).detach().mean())}

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        losses, scalars = self.context_loss(context, intervention, eq, progress)
        return losses.mean(), scalars

    def imitation_loss(self, context: Context, intervention: Tensor, target: Tensor) -> Tensor:
        """The mean squared difference ``[B]`` of the two contracts in payment units (:func:`payment_unit`), each
        agent's smallest payment over real outcomes taken off both: a payment made on every outcome changes no
        incentive, so contracts that differ by one are the same to the agents."""
        outcome_mask = context["outcome_mask"]
        unit = payment_unit(context).to(intervention.dtype).view(-1, 1, 1)
        ours, theirs = (incentive_part(self.feasible(t.to(intervention.dtype)), outcome_mask) / unit
                        for t in (intervention, target))
        squared = (ours - theirs) ** 2
        return squared.flatten(1).sum(dim=1) / (outcome_mask.sum(dim=1) * intervention.shape[1]).clamp_min(1)

    def bound(self, context: Context) -> Tensor:
        """The first best ``max_a sum_w P(w|a) v(w)`` ``[B]``: the best joint action's value, paying nothing.

        Payments are never negative, so no contract and no play earns the principal more.
        """
        expected = (context["transitions"] * context["values"].reshape(
            context["values"].shape[0], *[1] * (context["transitions"].dim() - 2), -1)).sum(dim=-1)
        real = joint_mask(context["mask"], expected.shape[1:])
        return torch.where(real, expected, torch.full_like(expected, -torch.inf)).flatten(1).amax(dim=1)

    def baseline_intervention(self, context: Context) -> Tensor:
        """No contract: zeros ``[B, N, M]``."""
        costs, values = context["costs"], context["values"]
        return torch.zeros(costs.shape[0], costs.shape[1], values.shape[1], dtype=costs.dtype, device=costs.device)

    def intervention_mask(self, context: Context) -> Tensor:
        """Real contract entries ``[B, N, M]``: every agent, real outcomes."""
        n_players = context["costs"].shape[1]
        return context["outcome_mask"].unsqueeze(1).expand(-1, n_players, -1)
