"""Test helpers for DID and its plugins' own tests: the independent CE/CCE reference solver and a check that
``did design`` refuses a malformed instance file.

Both live in the contract-test kit (:mod:`did_core.plugin_checks`), which holds every check written once:
:func:`reference_rows`, :func:`reference_scale` and :func:`reference_solve` are
:mod:`did_core.plugin_checks.reference`'s (``reference_solve`` needs cvxpy: ``pip install
'did-core[testing]'``), :func:`assert_design_refuses` asserts
:func:`did_core.plugin_checks.commands.design_refusal`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import EquilibriumBlock
from did_core.concepts import Concept, ConstraintOperator, DenseOperator, StackedOperator
from did_core.deviations import ActionDeviations
from did_core.equilibrium_range import linear_value_error, random_joints, value_range
from did_core.options import Options
from did_core.plugin_checks.commands import design_refusal
from did_core.plugin_checks.reference import reference_rows, reference_scale, reference_solve
from did_core.tasks import Context, DesignObjective

__all__ = ["reference_rows", "reference_scale", "reference_solve", "assert_design_refuses", "assert_linear_value",
           "CappedCCE"]


def assert_design_refuses(task: str, path: Path, content: Any, capsys: Any = None) -> None:
    """``did design TASK path`` on a malformed instance: exit 2, one ``did: error:`` line naming the file, nothing
    on stdout and nothing written beside the file.

    ``content`` is written to ``path`` first: text as it is, another value as JSON, ``None`` as a directory.
    ``capsys`` (pytest's fixture) is not needed: the command's output is captured where it runs.
    """
    problem = design_refusal(task, path, content)
    assert problem is None, problem


def assert_linear_value(objective: DesignObjective, context: Context, x: Tensor, block: EquilibriumBlock,
                        concept: Concept, eps: float = 0.05, tol: float = 1e-12) -> None:
    """An objective's ``linear_value`` is its ``value``: at the equilibria ``block`` finds for ``x [B, ...]`` and at
    random joints on their support (within ``tol``), and the maximum-entropy value lies within the value's range
    over the eps-equilibrium set (worst and best by linear programs)."""
    games, mask = objective.induce(context, x)
    eq = block(games.double(), mask, concept=concept, eps=eps)
    assert float(linear_value_error(objective, context, x, eq).max()) < tol
    sigma = random_joints(eq, torch.Generator().manual_seed(2))
    assert float(linear_value_error(objective, context, x, eq, sigma).max()) < tol
    worst, best = value_range(objective, context, x, concept, eps)
    low, high = (best, worst) if objective.minimize else (worst, best)
    me = objective.value(context, x, eq).double()
    assert bool((low <= me + 1e-8).all()) and bool((me <= high + 1e-8).all())


class CappedCCE(Concept):
    """A concept for tests: the CCE rows, then ``sigma(a) <= cap`` for every joint action ``a`` (tolerance 0).

    It has no per-player dual layout (its duals are flat), one option, and is infeasible when ``cap`` is below
    one over the number of joint actions: what a third-party concept may be. Subclass it to register it under
    another name.
    """

    name = "test_capped_cce"
    description = "CCE with P(a) <= cap"

    class Options(Options):
        cap: float = Field(0.5, gt=0, le=1, description="the largest probability of a joint action")

    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        cce = ActionDeviations(games, mask)
        cap = torch.eye(cce.joints, dtype=games.dtype, device=games.device) - self.options.cap
        return StackedOperator([cce, DenseOperator.extra_rows(cce, cap.expand(cce.batch, -1, -1))])
