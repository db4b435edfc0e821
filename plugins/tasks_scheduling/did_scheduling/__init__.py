"""The machine-scheduling task of DID (docs/mathematics.md, section 6.3)."""

from did_scheduling.generator import TaxGenerator
from did_scheduling.task import SchedulingObjective, SchedulingSampler, scheduling_game

__all__ = ["SchedulingObjective", "SchedulingSampler", "TaxGenerator", "scheduling_game"]
