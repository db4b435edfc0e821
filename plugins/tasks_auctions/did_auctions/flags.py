"""Flag types (the core's, :mod:`did_core.console`) and bounds shared by the auction commands: a bad value is one
``did: error:`` line (exit 2)."""

from __future__ import annotations

from did_core.console import bounded_int, finite_float, positive_float

__all__ = ["bounded_int", "positive_float", "finite_float", "MAX_SAMPLES", "MAX_STEPS"]

#: the most sampled types (or type profiles) an evaluation draws: 10^8 (evaluated in chunks; minutes of CPU).
MAX_SAMPLES = 100_000_000
#: the most training steps a run may ask for.
MAX_STEPS = 10_000_000
