"""Registers the task ``contract`` (sampler, objective, default generator) and ``did design contract``."""

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_contract.generator import ContractGenerator
from did_contract.task import ContractObjective, ContractSampler


@hookimpl
def did_register_samplers(register: Registry) -> None:
    register.add("contract", ContractSampler)


@hookimpl
def did_register_losses(register: Registry) -> None:
    register.add("contract", ContractObjective)


@hookimpl
def did_register_generators(register: Registry) -> None:
    register.add("contract", ContractGenerator)


@hookimpl
def did_register_commands(register: Registry) -> None:
    from did_contract.design import main

    register.add("design", main)
