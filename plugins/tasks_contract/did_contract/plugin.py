"""Registers the task ``contract`` (with its instance files for ``did design contract``) and the generator
``contract_screener`` (:class:`~did_contract.screener.BonusScreener`)."""

from pathlib import Path

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.tasks import Task, paper_profile, quick_profile
from did_contract.design import ContractInstances
from did_contract.generator import ContractGenerator
from did_contract.screener import BonusScreener
from did_contract.task import ContractObjective, ContractSampler

CONTRACT = Task(
    sampler=ContractSampler,
    objective=ContractObjective,
    generator=ContractGenerator,
    description="pay agents per outcome so that their equilibrium is worth more to the principal than it costs",
    size_axis="actions of the largest agent",
    train_profiles={"quick": quick_profile(eval_contexts=128), "paper": paper_profile()},
    polish_budget=400,
    instances=ContractInstances(),
    shipped=Path(__file__).parent / "shipped",
)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add("contract", CONTRACT)



@hookimpl
def did_register_generators(register: Registry) -> None:
    register.add("contract_screener", BonusScreener)
