"""A third-party design task for DID: a bonus game that makes two players coordinate on the joint action (0, 0).

The designer adds a bonus game ``x`` to a random two-player game and wants the
players to coordinate on ``(0, 0)``, paying for the size of the bonus. Installed
(``pip install -e examples/third_party_task``), the entry point of the group ``did``
registers the task ``coordination``: ``did train --task coordination``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.hookspecs import hookimpl
from did_core.nn.generators import PayoffGenerator
from did_core.registry import Registry
from did_core.tasks import Context, ContextSampler, DesignObjective, Options, Task


def real_joints(mask: Tensor) -> Tensor:
    """The real joint actions ``[B, 1, A, A]`` of an action mask ``[B, 2, A]`` (broadcast over the players)."""
    return (mask[:, 0, :, None] & mask[:, 1, None, :]).unsqueeze(1)


class CoordinationSampler(ContextSampler):
    """Random 2-player games with 2..max_actions actions each (padded, masked)."""

    class Options(Options):
        max_actions: int = Field(3, ge=2)

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"quick": {"max_actions": 3}, "paper": {"max_actions": 8}}

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        a = self.options.max_actions
        counts = torch.randint(2, a + 1, (batch, 2), generator=generator)
        mask = torch.arange(a) < counts.unsqueeze(2)  # [B, 2, A]
        return {"base": torch.randn(batch, 2, a, a, generator=generator) * real_joints(mask), "mask": mask}

    def size_of(self, context: Context) -> Tensor:
        return context["mask"].sum(dim=2).amax(dim=1)

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:  # for the core p2p generator
        return context["base"].unsqueeze(1), context["mask"]


class CoordinationObjective(DesignObjective):
    """Maximise P(0, 0) under the equilibrium, minus a price on the bonus."""

    class Options(Options):
        price: float = Field(0.01, ge=0)

    minimize: ClassVar[bool] = True
    metric_name: ClassVar[str] = "-P(0, 0)"

    def induce(self, context: Context, x: Tensor) -> tuple[Tensor, Tensor]:  # x [B, 2, A, A]
        return (context["base"] + x) * real_joints(context["mask"]), context["mask"]

    def value(self, context: Context, x: Tensor, eq: Equilibrium) -> Tensor:
        return -eq.sigma[:, 0, 0]

    def loss(self, context: Context, x: Tensor, eq: Equilibrium, progress: float) -> tuple[Tensor, dict[str, float]]:
        cost = x.pow(2).flatten(1).mean(dim=1)
        return (self.value(context, x, eq) + self.options.price * cost).mean(), {"cost": float(cost.detach().mean())}

    def baseline_intervention(self, context: Context) -> Tensor:
        return torch.zeros_like(context["base"])


COORDINATION = Task(
    sampler=CoordinationSampler,
    objective=CoordinationObjective,
    generator=PayoffGenerator,  # the core's equivariant generator over payoff features
    description="a bonus game that makes the players coordinate on (0, 0)",
    size_axis="actions of the larger player",
    train_profiles={"quick": {"steps": 200, "lr": 3e-3}, "paper": {"steps": 20000}},
    polish_budget=400,  # Nelder-Mead evaluations per context for did eval --polish
    instances=None,  # no instance files for did design
)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add("coordination", COORDINATION)
