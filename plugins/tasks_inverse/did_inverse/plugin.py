"""Registers the task ``inverse``: its sampler, objective and default generator."""

from typing import Any

from torch import nn

from did_core.hookspecs import hookimpl
from did_core.nn.generators import PayoffGenerator
from did_core.registry import Registry
from did_core.tasks import ContextSampler
from did_inverse.task import InverseObjective, InverseSampler


def inverse_generator(sampler: ContextSampler, **options: Any) -> nn.Module:
    """P2P generator over (target, noise) channels with an identity output: the whole game."""
    return PayoffGenerator(sampler, **{"output": "identity", **options})


@hookimpl
def did_register_samplers(register: Registry) -> None:
    register.add("inverse", InverseSampler)


@hookimpl
def did_register_losses(register: Registry) -> None:
    register.add("inverse", InverseObjective)


@hookimpl
def did_register_generators(register: Registry) -> None:
    register.add("inverse", inverse_generator)
