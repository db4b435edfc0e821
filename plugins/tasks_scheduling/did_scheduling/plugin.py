"""Registers the task ``scheduling``."""

from pathlib import Path

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.tasks import Task, paper_profile, quick_profile
from did_scheduling.design import SchedulingInstances
from did_scheduling.generator import TaxGenerator
from did_scheduling.task import SchedulingObjective, SchedulingSampler

SCHEDULING = Task(
    sampler=SchedulingSampler,
    objective=SchedulingObjective,
    # A PayoffGenerator over the untaxed utilities (and makespan) ending in -softplus whose free
    # tax level (a function of a_{-p} only, which moves no equilibrium) is removed.
    generator=TaxGenerator,
    description="tax selfish jobs on machines so that their equilibrium has a short makespan",
    size_axis="machines",
    train_profiles={"quick": quick_profile(steps=200), "paper": paper_profile()},
    polish_budget=4000,
    instances=SchedulingInstances(),
    shipped=Path(__file__).parent / "shipped",
)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add("scheduling", SCHEDULING)
