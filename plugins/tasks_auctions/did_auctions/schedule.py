"""The relaxation's schedule: a tolerance or temperature that decays geometrically over training."""

from __future__ import annotations

import math

__all__ = ["geometric"]


def geometric(start: float, end: float, progress: float) -> float:
    """``start`` at ``progress`` 0, ``end`` at 1, geometric in between (both > 0)."""
    return math.exp(math.log(start) + progress * (math.log(end) - math.log(start)))
