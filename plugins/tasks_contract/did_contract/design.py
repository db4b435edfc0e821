"""How ``did design contract PROBLEM.json`` reads a contract problem, optimises contracts and shows them.

Usage (the generic core command, :mod:`did_core.commands.design`)::

    did design contract examples/christmas_tree.json [--block B] [--run-dir RUN]
                        [--concept cce|ce] [--eps 0.05] [--absolute] [--steps 200] [--lr 0.05] [--json]

:class:`ContractInstances` is the task's ``Task.instances``:

* ``load``: the problem JSON of :mod:`did_contract.problem` as a batch of one
  context that remembers the problem's agent, action and outcome names;
* ``optimise``: :func:`did_contract.search.optimise_contracts`, the multi-start
  search -- hundreds of bonus and linear contracts screened through the block,
  then projected gradient ascent (Adam) from the best few -- never worse than no
  contract under that block; :meth:`ContractInstances.describe_budget` says, in
  one line, what it spends;
* ``describe`` / ``describe_joint``: the contracts as a table (agents x outcomes)
  and joints by action names.

Shapes: a context holds ``costs [1, N, A..A]``, ``transitions [1, A..A, M]``,
``values [1, M]``, ``mask [1, N, A]``, ``outcome_mask [1, M]``; contracts are ``[1, N, M]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from did_core.console import joint_lines
from did_core.tasks import Context, InstanceFormat, NamedContext, numbered
from did_contract.problem import ContractProblem, load_problem
from did_contract.search import KEEP, KEEP_EARNED, optimise_contracts, search_budget

__all__ = ["ContractInstances", "ProblemContext", "optimise_contracts"]


class ProblemContext(NamedContext):
    """A contract context (a batch of one) that keeps its problem: agents and actions by name, and its outcomes."""

    def __init__(self, problem: ContractProblem) -> None:
        super().__init__(problem.context, problem.agents, problem.actions)
        self.problem = problem


def _outcomes(context: Context) -> list[str]:
    """Outcome names: the problem's, else numbered ones (a context not read from a file)."""
    if isinstance(context, ProblemContext):
        return context.problem.outcomes
    return numbered("outcome", int(context["outcome_mask"][0].sum()))


class ContractInstances(InstanceFormat):
    """Contract-problem JSON files (:mod:`did_contract.problem`) for ``did design contract``."""

    noun = "contracts"
    baseline = "no contract"
    value_name = "principal's utility"
    method = (f"per-instance search (bonus and linear contracts screened, then gradient ascent from the best "
              f"{KEEP + KEEP_EARNED})")
    player_word = "agent"
    #: :func:`did_contract.search.optimise_contracts`: contracts ``[B, N, M]``; ``start`` is one more contract
    #: to screen (e.g. a generator's output).
    optimiser = staticmethod(optimise_contracts)
    takes_start = True

    def describe_budget(self, context: Context, steps: int, start: Tensor | None = None) -> str:
        """What :meth:`optimise` spends on ``context`` with ``steps`` steps, in one line, e.g. ``"screened 211
        contracts, then ascent from the best 6 x 200 steps: 1417 block solves"``."""
        return search_budget(context, steps, start=start).describe()

    def solves_per_step(self, context: Context, start: bool = False) -> int:
        """The ascent's starts, solved together each step."""
        return search_budget(context, 1).starts

    def load(self, path: Path) -> Context:
        """The problem in ``path``; a malformed file is a one-line ``ProblemError`` (a ``ValueError``)."""
        return ProblemContext(load_problem(Path(path)))

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """The contracts ``[1, N, M]`` as a table: what each agent is paid per outcome."""
        agents, outcomes = self.names(context)[0], _outcomes(context)
        width = max(12, *(len(o) for o in outcomes))
        name_width = max(len("pays to"), *(len(a) for a in agents))
        lines = [f"{'pays to':<{name_width}}  " + "  ".join(f"{o:>{width}}" for o in outcomes)]
        for i, agent in enumerate(agents):
            lines.append(f"{agent:<{name_width}}  "
                         + "  ".join(f"{float(t):>{width}.4f}" for t in intervention[0, i, :len(outcomes)]))
        return lines

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """A joint ``[A_1..A_N]`` (real actions) as one line per joint action, by action names."""
        return joint_lines(*self.names(context), sigma)

    def summary(self, context: Context) -> dict[str, Any]:
        """The problem's names: ``agents``, ``actions`` (per agent) and ``outcomes``."""
        (agents, actions), outcomes = self.names(context), _outcomes(context)
        return {"agents": agents, "actions": actions, "outcomes": outcomes}
