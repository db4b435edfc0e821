"""Unconverged solves counted and summarised in one line, instead of one warning per batch.

A block flags every game it did not solve to its tolerance false in
``info["converged"]`` and warns with :class:`~did_core.blocks.NonConvergenceWarning`
(or a subclass). The held-out evaluation and the local polish solve thousands of
small batches (the polish one game at a time, in worker processes), so there the
warnings are silenced (:func:`counting`) and the flagged games counted per block and
phase in a :class:`SolveTally`. Tallies add up over chunks, worker processes and
ranks; the evaluation stores them per block (``convergence``) and the commands print
them as one line (:func:`did_core.results.convergence_note`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from did_core.blocks import Equilibrium, NonConvergenceWarning

__all__ = ["SolveTally", "counting"]


@dataclass
class SolveTally:
    """Games solved, how many of them a block flagged unconverged, and the largest violation among those."""

    solves: int = 0
    unconverged: int = 0
    worst_violation: float = 0.0

    def record(self, eq: Equilibrium) -> None:
        """Count the games of one answer (a block that reports no ``converged`` flags counts as converged)."""
        self.solves += int(eq.sigma.shape[0])
        converged = eq.info.get("converged")
        if converged is None:
            return
        failed = ~torch.as_tensor(converged, dtype=torch.bool).cpu()
        if bool(failed.any()):
            violation = eq.info["violation"].detach().double().cpu()[failed].nan_to_num(math.inf)
            self.unconverged += int(failed.sum())
            self.worst_violation = max(self.worst_violation, float(violation.max()))

    def __add__(self, other: "SolveTally") -> "SolveTally":
        return SolveTally(self.solves + other.solves, self.unconverged + other.unconverged,
                          max(self.worst_violation, other.worst_violation))

    def as_dict(self) -> dict[str, Any]:
        """The stored form: ``{"solves", "unconverged", "worst_violation"}``."""
        return {"solves": self.solves, "unconverged": self.unconverged, "worst_violation": self.worst_violation}


@contextmanager
def counting() -> Iterator[None]:
    """Within: blocks' :class:`~did_core.blocks.NonConvergenceWarning` are not shown (the caller counts instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)
        yield
