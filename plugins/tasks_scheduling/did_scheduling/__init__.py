"""The machine-scheduling task of DID (docs/mathematics.md, section 6.3)."""

from did_scheduling.generator import TaxGenerator, excess_over_cheapest
from did_scheduling.task import SchedulingObjective, SchedulingSampler, scheduling_game

__all__ = ["SchedulingObjective", "SchedulingSampler", "TaxGenerator", "excess_over_cheapest", "scheduling_game"]
