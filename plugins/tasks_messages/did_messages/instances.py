"""``did design message_allocation FILE`` and ``did design mu_spm FILE``: the instance files, the per-instance
optimisation, and the mechanism and the followers' strategies in words.

Message allocation (a JSON object; ``item_names``, ``description`` and ``notes`` optional)::

    {"items": 3, "messages": 2, "prior": [0.3333, 0.3333, 0.3334], "item_names": ["red", "green", "blue"]}

muSPM (value-probability pairs per agent; ``agents``, ``description`` and ``notes`` optional)::

    {"values": [[[0.5, 0.8], [2.5, 0.2]], [[0, 0.5], [1, 0.5]]], "messages": 2, "agents": ["agent 1", "agent 2"]}

A prior's probabilities are finite, >= 0 and sum to 1 (within 1e-6; then
renormalised). Sizes (:data:`FILE_ITEMS` and the like): at most 6 items and 3
messages; at most 3 values per agent, values in ``[0, 1e6]`` and at most 3 messages. The per-instance optimisation is
Adam on unconstrained parameters (allocation logits; the visiting probability's
logit and the prices' softplus inverses) through the exact block, from a
generator's answer when there is one, keeping the best intervention it met.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from did_core.bayesian import check_anf_size
from did_core.blocks import EquilibriumBlock
from did_core.concepts import Concept
from did_core.equilibria import Epsilon
from did_core.instance_files import InstanceError, check_fields, load_instance, names
from did_core.tasks import Context, DesignObjective, InstanceFormat
from did_messages.allocation import AllocationObjective, feasible_allocation, optimum
from did_messages.spm import SPMObjective, feasible_mechanism, price_cap

__all__ = ["AllocationInstances", "SPMInstances", "load_allocation", "load_spm", "PRIOR_TOLERANCE", "MAX_VALUE"]

#: How far a prior's sum may be from 1.
PRIOR_TOLERANCE = 1e-6
#: The largest value an muSPM agent may have.
MAX_VALUE = 1e6
#: The allocation is ``softmax(LOGIT_SCALE * theta)`` in the per-instance optimisation (pure rules are far away).
LOGIT_SCALE = 4.0
#: The largest instance files read: the range the shipped generators were trained on or near it, where the
#: 32-start search stays small (at most 729 joint actions per start; a file of 8 items and 4 messages, 65536 per
#: start, took two minutes for two steps of it).
FILE_ITEMS, FILE_MESSAGES = 6, 3
FILE_SPM_TYPES, FILE_SPM_MESSAGES = 3, 3
#: Starts of the per-instance optimisation, optimised together as one batch.
STARTS = 32
#: The straight-through temperature of the muSPM per-instance optimisation (measured on the paper's instance, 32
#: starts: 0.0065 welfare loss with 0.1, 0.0108 with the training default 1.0, whose smoother landscape suits one
#: generator over a family, not many starts on one instance).
SEARCH_TEMPERATURE = 0.1


def _count(data: Any, field: str, low: int, high: int) -> int:
    """An integer field in ``[low, high]`` (booleans are not integers)."""
    if isinstance(data, bool) or not isinstance(data, int) or not low <= data <= high:
        raise InstanceError(f"'{field}' must be an integer from {low} to {high}, got {str(data)[:40]}")
    return data


def _probabilities(data: Any, field: str, count: int | None) -> list[float]:
    """A list of finite probabilities >= 0 summing to 1 (``count`` of them when given), renormalised."""
    if not isinstance(data, list) or not data or (count is not None and len(data) != count):
        size = f"{count} " if count is not None else ""
        raise InstanceError(f"'{field}' must be a list of {size}probabilities")
    out = []
    for k, p in enumerate(data):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not _finite(p) or p < 0:
            raise InstanceError(f"'{field}[{k}]' must be a finite number >= 0, got {str(p)[:40]}")
        out.append(float(p))
    if abs(sum(out) - 1) > PRIOR_TOLERANCE:
        raise InstanceError(f"'{field}' must sum to 1, got {sum(out):.9g}")
    return [p / sum(out) for p in out]


def _finite(x: int | float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def load_allocation(path: Path) -> Context:
    """A message-allocation instance as a context of one (``prior [1, k]``, ``items``, ``messages [1, m]``,
    ``optimum``) with its item names in ``item_names`` (module docstring)."""
    def build(data: Any) -> Context:
        data = check_fields(data, {"items", "messages", "prior", "item_names"}, {"items", "messages", "prior"})
        k = _count(data["items"], "items", 1, FILE_ITEMS)
        m = _count(data["messages"], "messages", 1, FILE_MESSAGES)
        check_anf_size(1, k, m)
        prior = torch.tensor([_probabilities(data["prior"], "prior", k)])
        item_names = names(data["item_names"], "item_names", "item") if "item_names" in data else None
        if item_names is not None and len(item_names) != k:
            raise InstanceError(f"'item_names' must name the {k} items, got {len(item_names)} names")
        messages = torch.ones(1, m, dtype=torch.bool)
        return _Named({"prior": prior, "items": torch.ones(1, k, dtype=torch.bool), "messages": messages,
                       "optimum": optimum(prior, messages)}, item_names or [f"item {i + 1}" for i in range(k)])
    return load_instance(path, build)


def load_spm(path: Path) -> Context:
    """An muSPM instance as a context of one (``values``, ``prior``, ``types [1, 2, T]``, ``messages [1, m]``) with
    the agents' names (module docstring)."""
    def build(data: Any) -> Context:
        data = check_fields(data, {"values", "messages", "agents"}, {"values", "messages"})
        m = _count(data["messages"], "messages", 1, FILE_SPM_MESSAGES)
        pairs = data["values"]
        if not isinstance(pairs, list) or len(pairs) != 2:
            raise InstanceError("'values' must hold two lists of [value, probability] pairs, one per agent")
        rows = []
        for i, agent in enumerate(pairs):
            if not isinstance(agent, list) or not 1 <= len(agent) <= FILE_SPM_TYPES or not all(
                    isinstance(p, list) and len(p) == 2 for p in agent):
                raise InstanceError(f"'values[{i}]' must be a list of 1 to {FILE_SPM_TYPES} [value, probability] "
                                    f"pairs")
            for t, (v, _) in enumerate(agent):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v) or not 0 <= v <= MAX_VALUE:
                    raise InstanceError(f"'values[{i}][{t}][0]' must be a value from 0 to {MAX_VALUE:g}, "
                                        f"got {str(v)[:40]}")
            rows.append(([float(v) for v, _ in agent], _probabilities([p for _, p in agent], f"values[{i}] "
                                                                       f"probabilities", None)))
        agents = names(data["agents"], "agents", "agent") if "agents" in data else ["agent 1", "agent 2"]
        if len(agents) != 2:
            raise InstanceError(f"'agents' must name the 2 agents, got {len(agents)} names")
        t = max(len(v) for v, _ in rows)
        check_anf_size(2, t, m)
        values, prior = torch.zeros(1, 2, t), torch.zeros(1, 2, t)
        types = torch.zeros(1, 2, t, dtype=torch.bool)
        for i, (v, p) in enumerate(rows):
            values[0, i, : len(v)], prior[0, i, : len(p)], types[0, i, : len(v)] = torch.tensor(v), torch.tensor(p), True
        return _Named({"values": values, "prior": prior, "types": types,
                       "messages": torch.ones(1, m, dtype=torch.bool)}, agents)
    return load_instance(path, build)


class _Named(dict):
    """A context of one with the names its file gives (the items, or the agents)."""

    def __init__(self, context: Context, labels: list[str]) -> None:
        super().__init__(context)
        self.labels = labels


def _adam(objective: DesignObjective, context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon,
          steps: int, lr: float, theta: Tensor, intervention: Any) -> Tensor:
    """``steps`` Adam steps on every start ``theta [S, ...]`` at once (start ``s``'s intervention is
    ``intervention(theta)[s]``) through ``block`` on ``S`` copies of the context of one; the best intervention
    ``[1, ...]`` met by any start at any step (the starts included), by the objective's value."""
    theta = theta.detach().double().clone().requires_grad_(True)
    copies = {k: v.expand(theta.shape[0], *v.shape[1:]) for k, v in context.items()}
    optimiser = torch.optim.Adam([theta], lr=lr)
    best, best_value = None, math.inf
    sign = 1.0 if objective.minimize else -1.0
    for step in range(steps + 1):
        x = intervention(theta)
        games, mask = objective.induce(copies, x)
        eq = block(games, mask, concept=concept, eps=eps)
        value = sign * objective.value(copies, x, eq)
        low = int(value.detach().argmin())
        if float(value[low].detach()) < best_value:
            best, best_value = x[low:low + 1].detach().clone(), float(value[low].detach())
        if step == steps:
            break
        optimiser.zero_grad()
        value.sum().backward()
        optimiser.step()
    assert best is not None
    return best


def _strategy_lines(sigma: Tensor, agents: list[str], actions: list[str]) -> list[str]:
    """Each agent's marginal of the joint ``sigma [A_1..A_M]`` (agents with one action left out), in words."""
    lines = []
    for k, agent in enumerate(agents):
        if sigma.shape[k] < 2:
            continue
        marginal = sigma.sum(dim=tuple(d for d in range(sigma.dim()) if d != k))
        lines.append(f"{agent}: " + ", ".join(f"{a} {float(p):.4f}" for a, p in zip(actions, marginal)))
    return lines


class AllocationInstances(InstanceFormat):
    """``did design message_allocation FILE``: an allocation rule per message, and each type's messages."""

    noun: ClassVar[str] = "allocation rule"
    baseline: ClassVar[str] = "the uniform allocation"
    value_name: ClassVar[str] = "probability the follower gets its item"
    method: ClassVar[str] = "Adam on the allocation logits"
    takes_start: ClassVar[bool] = True

    def load(self, path: Path) -> Context:
        return load_allocation(path)

    def optimise(self, context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon, steps: int,
                 lr: float, start: Tensor | None = None) -> Tensor:
        """Adam on ``theta [S, M, K]``, the allocation ``softmax(LOGIT_SCALE theta)`` over the real items, from
        :data:`STARTS` random logits (seed 0: messages must start apart) and ``start``'s logits when given."""
        items = context["items"]
        noise = torch.Generator().manual_seed(0)
        theta = torch.randn(STARTS, context["messages"].shape[1], items.shape[1], generator=noise,
                            dtype=torch.float64)
        if start is not None:
            given = feasible_allocation(context, start.double()).clamp_min(1e-12).log() / LOGIT_SCALE
            theta = torch.cat([given, theta[1:]])

        def allocation(t: Tensor) -> Tensor:
            return torch.softmax((LOGIT_SCALE * t).masked_fill(~items.unsqueeze(1), -torch.inf), dim=2)
        return _adam(AllocationObjective(), context, block, concept, eps, steps, lr, theta, allocation)

    def solves_per_step(self, context: Context, start: bool = False) -> int:
        return STARTS + int(start)

    def describe_budget(self, context: Context, steps: int, start: Tensor | None = None) -> str | None:
        return f"{STARTS} starts{' (one the given rule)' if start is not None else ''}, the best rule met"

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """Per message, the items it gives (probability >= 0.005), and the best mechanism's value."""
        x = feasible_allocation(context, intervention.double())[0]
        labels = _labels(context, "item", context["items"].shape[1])
        lines = []
        for mu in range(int(context["messages"].sum())):
            given = sorted(((float(p), labels[i]) for i, p in enumerate(x[mu]) if p >= 0.005), reverse=True)
            lines.append(f"message {mu + 1}: " + ", ".join(f"{name} ({p:.3f})" for p, name in given))
        lines.append(f"best possible ({int(context['messages'].sum())} most likely items, one per message): "
                     f"{float(context['optimum'][0]):.4f}")
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """Each type's (wanted item's) probability of every message."""
        k = context["items"].shape[1]
        labels = _labels(context, "item", k)
        prior = context["prior"][0]
        agents = [f"wants {labels[i]} (prior {float(prior[i]):.3f})" for i in range(k)]
        return _strategy_lines(sigma, agents, [f"message {mu + 1}" for mu in range(max(sigma.shape))])

    def summary(self, context: Context) -> dict[str, Any]:
        return {"items": _labels(context, "item", context["items"].shape[1]),
                "messages": int(context["messages"].sum()), "optimum": float(context["optimum"][0])}


class SPMInstances(InstanceFormat):
    """``did design mu_spm FILE``: the sequential price mechanism per message profile, in words."""

    noun: ClassVar[str] = "mechanism"
    baseline: ClassVar[str] = "agent 2 first at price 0, messages ignored"
    value_name: ClassVar[str] = "welfare loss"
    method: ClassVar[str] = "Adam on the visiting logits and price parameters"
    takes_start: ClassVar[bool] = True

    def load(self, path: Path) -> Context:
        return load_spm(path)

    def optimise(self, context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon, steps: int,
                 lr: float, start: Tensor | None = None) -> Tensor:
        """Adam on ``theta [S, M, M, 3]``: ``q = sigmoid(theta_0)``, prices ``price_cap(context) *
        sigmoid(theta_1, theta_2)``, from :data:`STARTS` random parameters (seed 0) and ``start`` when given: the
        landscape has many local optima (a price on the wrong side of a value gets no gradient back)."""
        cap = price_cap(context).double().view(-1, 1, 1, 1)
        m = context["messages"].shape[1]
        theta = 2 * torch.randn(STARTS, m, m, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        if start is not None:
            x = feasible_mechanism(start.double())
            share = torch.cat([x[..., :1], x[..., 1:] / cap], dim=-1).clamp(1e-6, 1 - 1e-6)
            theta = torch.cat([torch.log(share / (1 - share)), theta[1:]])

        def mechanism(t: Tensor) -> Tensor:
            return torch.cat([torch.sigmoid(t[..., :1]), cap * torch.sigmoid(t[..., 1:])], dim=-1)
        return _adam(SPMObjective(temperature=SEARCH_TEMPERATURE), context, block, concept, eps, steps, lr, theta,
                     mechanism)

    def solves_per_step(self, context: Context, start: bool = False) -> int:
        return STARTS + int(start)

    def describe_budget(self, context: Context, steps: int, start: Tensor | None = None) -> str | None:
        return f"{STARTS} starts{' (one the given mechanism)' if start is not None else ''}, the best mechanism met"

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """Per message profile: who is visited first (and how surely) and each agent's posted price."""
        x = feasible_mechanism(intervention.double())[0]
        a1, a2 = _labels(context, "agent", 2)
        lines = []
        m = int(context["messages"].sum())
        for mu1 in range(m):
            for mu2 in range(m):
                q, p1, p2 = (float(v) for v in x[mu1, mu2])
                first, second, sure = (a1, a2, q) if q >= 0.5 else (a2, a1, 1 - q)
                how = "" if sure > 0.995 else f" with probability {sure:.3f}"
                prices = {a1: p1, a2: p2}
                lines.append(f"after messages ({a1}: {mu1}, {a2}: {mu2}): visit {first} first{how} and offer the "
                             f"item at {prices[first]:.3f}; if unsold, offer it to {second} at {prices[second]:.3f}")
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """Each agent's message strategy per value."""
        a1, a2 = _labels(context, "agent", 2)
        t = context["values"].shape[2]
        agents = [f"{name} with value {float(context['values'][0, i, k]):.4g} "
                  f"(prior {float(context['prior'][0, i, k]):.3f})" for i, name in enumerate((a1, a2))
                  for k in range(t)]
        return _strategy_lines(sigma, agents, [f"message {mu}" for mu in range(max(sigma.shape))])

    def summary(self, context: Context) -> dict[str, Any]:
        return {"agents": _labels(context, "agent", 2), "messages": int(context["messages"].sum())}


def _labels(context: Context, word: str, count: int) -> list[str]:
    """The file's names (a loaded context), else ``word`` numbered from 1."""
    return list(context.labels) if isinstance(context, _Named) else [f"{word} {i + 1}" for i in range(count)]
