"""A third-party design task for DID: emission taxes for a Cournot market (:mod:`did_example_task.market`).

Installed (``pip install -e examples/third_party_task``), the entry point of the group ``did`` registers the task
``cournot``: ``did train --task cournot``, ``did eval --shipped cournot``, ``did design cournot MARKET.json``.
"""

from __future__ import annotations

from pathlib import Path

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.tasks import Task, paper_profile, quick_profile
from did_example_task.generator import TaxRateGenerator
from did_example_task.instances import MarketInstances
from did_example_task.market import MarketSampler, WelfareObjective

__all__ = ["COURNOT", "did_register_tasks"]

COURNOT = Task(
    sampler=MarketSampler,
    objective=WelfareObjective,
    generator=TaxRateGenerator,  # the core's P2P trunk, one tax rate per firm
    description="emission taxes that steer Cournot competitors to the most welfare",
    size_axis="quantity levels of the firm with the most",
    train_profiles={"quick": quick_profile(steps=200), "paper": paper_profile()},
    polish_budget=200,  # Nelder-Mead evaluations per context for did eval --polish
    instances=MarketInstances(),  # did design cournot MARKET.json
    shipped=Path(__file__).parent / "shipped",  # one did ship folder per concept
)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add("cournot", COURNOT)
