"""Registers the task ``scheduling``: its sampler, objective and default generator."""

from typing import Any

from torch import nn

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.tasks import ContextSampler
from did_scheduling.generator import TaxGenerator
from did_scheduling.task import SchedulingObjective, SchedulingSampler


def scheduling_generator(sampler: ContextSampler, **options: Any) -> nn.Module:
    """P2P generator over the untaxed utilities (and makespan) ending in ``-softplus``: the intervention ``-x``.

    A ``TaxGenerator``: a ``PayoffGenerator`` with ``output="neg_softplus"`` whose
    free tax level (a function of ``a_{-p}`` only, which moves no equilibrium) is removed.
    """
    return TaxGenerator(sampler, **options)


@hookimpl
def did_register_samplers(register: Registry) -> None:
    register.add("scheduling", SchedulingSampler)


@hookimpl
def did_register_losses(register: Registry) -> None:
    register.add("scheduling", SchedulingObjective)


@hookimpl
def did_register_generators(register: Registry) -> None:
    register.add("scheduling", scheduling_generator)
