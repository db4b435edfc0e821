"""Registers the task ``inverse``."""

from pathlib import Path
from typing import Any

from torch import nn

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.tasks import ContextSampler, Task, paper_profile, quick_profile
from did_inverse.design import InverseInstances
from did_inverse.generator import InverseGenerator
from did_inverse.task import InverseObjective, InverseSampler


def inverse_generator(sampler: ContextSampler, **options: Any) -> nn.Module:
    """The log-likelihood game of the target plus a P2P correction over (target, noise) channels."""
    return InverseGenerator(sampler, **options)


INVERSE = Task(
    sampler=InverseSampler,
    objective=InverseObjective,
    generator=inverse_generator,
    description="find a game whose eps-maximum-entropy equilibrium is a given target joint",
    size_axis="actions of the larger player",
    # quick: 2000 steps on scaled features with the log-likelihood prior reach KL 0.048 (600 steps of the plain
    # generator on raw features: 0.160; 1500 steps with the prior: 0.052).
    train_profiles={"quick": quick_profile(steps=2000, eval_contexts=128), "paper": paper_profile()},
    polish_budget=4000,
    instances=InverseInstances(),
    shipped=Path(__file__).parent / "shipped",
)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add("inverse", INVERSE)
