"""``did design scheduling JOBS.json``: read job times, optimise taxes for that instance, show them.

File format (a JSON object; ``description`` and ``notes`` are free text)::

    {"times":    [[1.0, 2.0, 1.5], [1.2, 0.8, 2.5]],   # [N players][m machines]: tau_{i,k} >= 0
     "machines": ["fast", "slow", "spare"],             # optional, m names
     "players":  ["Alice", "Bob"]}                      # optional, N names (each player has one job)

``times[i][k]`` is how long player ``i``'s job takes on machine ``k``: finite,
non-negative numbers, 2 to 4 players, at least 2 machines, at most 2^16 joint
actions. Names default to "player 1" and "machine 1", ...

:class:`SchedulingInstances` is the task's ``Task.instances``:

* ``load``: the context exactly as :meth:`did_scheduling.task.SchedulingSampler.sample`
  builds one (``times``, ``mask [1, N, m]``, and the untaxed ``utilities`` and
  ``makespan`` of :func:`did_scheduling.task.scheduling_game`, the default float type);
* ``optimise``: :func:`optimise_taxes`, Adam on the raw output of the task's
  generator, mapped to taxes ``>= 0`` by the same map
  (:meth:`did_core.nn.generators.LineGaugedGenerator.output_map` of
  :class:`did_scheduling.generator.TaxGenerator`), minimising the objective's loss
  ``E_sigma M + lam E_sigma sum_i x_i`` at the end of its ramp (progress 1);
* ``describe``: the taxes per player at every joint action, by machine names;
  ``describe_joint``: a joint by machine names, with each joint action's makespan.

The objective's value is the expected makespan ``E_sigma M`` (lower is better);
the baseline is no tax.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.blocks import EquilibriumBlock
from did_core.equilibria import Epsilon
from did_core.instance_files import InstanceError, array, check_fields, load_instance, names
from did_core.tasks import Context, InstanceFormat, NamedContext
from did_scheduling.generator import TaxGenerator
from did_scheduling.task import SchedulingObjective, scheduling_game

__all__ = ["SchedulingInstances", "load_jobs", "optimise_taxes", "MAX_JOINT_ACTIONS"]

_KEYS = {"times", "machines", "players"}
#: the most joint actions ``m ** N`` of an instance (as the sampler allows).
MAX_JOINT_ACTIONS = 2 ** 16


def _jobs_context(data: Any) -> NamedContext:
    """Validate a decoded JSON object and build its context (see the module docstring)."""
    check_fields(data, _KEYS, {"times"})
    times = data["times"]
    if not isinstance(times, list) or not 2 <= len(times) <= 4:
        got = f"{len(times)} row(s)" if isinstance(times, list) else type(times).__name__
        raise InstanceError(f"'times' must be a list of one row of job times per player (2 to 4 players), got {got}")
    n = len(times)
    m = len(times[0]) if isinstance(times[0], list) else 0
    if m < 2:
        raise InstanceError("'times[0]' must be a list of the job's time on each machine (at least 2 machines)")
    if m ** n > MAX_JOINT_ACTIONS:
        raise InstanceError(f"{n} players on {m} machines give {m ** n} joint actions (at most {MAX_JOINT_ACTIONS})")
    values = array(times, "times", (n, m))
    if (values < 0).any():
        i, k = (int(v) for v in (values < 0).nonzero()[0])
        raise InstanceError(f"'times[{i}][{k}]' is {float(values[i, k]):g}: job times must be non-negative")
    players = names(data["players"], "players", "player") if "players" in data else \
        [f"player {i + 1}" for i in range(n)]
    if len(players) != n:
        raise InstanceError(f"'players' names {len(players)} players, but 'times' has {n} rows")
    machines = names(data["machines"], "machines", "machine") if "machines" in data else \
        [f"machine {k + 1}" for k in range(m)]
    if len(machines) != m:
        raise InstanceError(f"'machines' names {len(machines)} machines, but every row of 'times' has {m}")
    dtype = torch.get_default_dtype()  # as the sampler's: a trained generator takes this float type
    mask = torch.ones(1, n, m, dtype=torch.bool)
    times_t = values.unsqueeze(0).to(dtype)
    utilities, makespan = scheduling_game(times_t, mask)
    return NamedContext({"times": times_t, "mask": mask, "utilities": utilities, "makespan": makespan},
                        players, [machines] * n)


def load_jobs(path: Path) -> NamedContext:
    """The job-times file in ``path`` as a context of one; any problem is one ``InstanceError`` line."""
    return load_instance(path, _jobs_context)


def optimise_taxes(context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon | float = 0.05,
                   steps: int = 200, lr: float = 0.05, objective: SchedulingObjective | None = None) -> Tensor:
    """Per-instance taxes as an intervention ``-x [B, N, M..]`` (``x >= 0``) by Adam through ``block``.

    The parameter is the generator's raw output ``r`` (start 0: no tax), mapped to
    ``-x`` by :meth:`TaxGenerator.output_map`; ``steps`` Adam steps of rate ``lr``
    minimise ``objective.loss`` (default: the task's objective with default options)
    at progress 1, i.e. with the final tax weight ``lam``. Returns per context the
    iterate with the smallest loss under ``block`` (the start, no tax, included, so
    the expected makespan is never worse than without taxes under ``block``).
    """
    eps = Epsilon.of(eps)
    objective = objective or SchedulingObjective()
    context = {key: value.double() if value.is_floating_point() else value for key, value in context.items()}
    mask = context["mask"]
    raw = torch.zeros_like(context["utilities"]).requires_grad_(True)
    optimiser = torch.optim.Adam([raw], lr=lr)
    best = torch.zeros_like(context["utilities"])
    best_loss = torch.full((mask.shape[0],), torch.inf, dtype=torch.float64)
    view = (-1, *[1] * (raw.dim() - 1))
    lam = objective.options.weight(1.0)
    for step in range(steps + 1):
        x = TaxGenerator.output_map(raw if step < steps else raw.detach(), mask)
        games, induced_mask = objective.induce(context, x)
        eq = block(games, induced_mask, concept=concept, eps=eps)
        per_context = objective.value(context, x, eq) + lam * objective.taxes_paid(context, x, eq)
        better = per_context.detach() < best_loss
        best = torch.where(better.view(view), x.detach(), best)
        best_loss = torch.where(better, per_context.detach(), best_loss)
        if step < steps:
            loss, _ = objective.loss(context, x, eq, 1.0)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return best


def _table(players: list[str], machines: list[str], columns: dict[str, Tensor]) -> list[str]:
    """One line per joint action (machine names, the last player's varying fastest), one column per entry."""
    labels = [", ".join(combo) for combo in itertools.product(machines, repeat=len(players))]
    header = ", ".join(players)
    width = max(len(header), *(len(label) for label in labels))
    widths = [max(10, len(name)) for name in columns]
    lines = [f"{header:<{width}}  " + "  ".join(f"{name:>{w}}" for name, w in zip(columns, widths))]
    flat = [values.reshape(-1).tolist() for values in columns.values()]
    for row, label in enumerate(labels):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{v[row]:>{w}.4f}" for v, w in zip(flat, widths)))
    return lines


class SchedulingInstances(InstanceFormat):
    """Job-times JSON files for ``did design scheduling``."""

    noun = "taxes"
    baseline = "no tax"
    value_name = "expected makespan"
    method = "per-instance gradient descent (Adam) on the tax generator's raw output from no tax"
    action_word = "machine"
    #: :func:`optimise_taxes`: the intervention ``-x [1, N, M..]``.
    optimiser = staticmethod(optimise_taxes)

    def load(self, path: Path) -> Context:
        return load_jobs(Path(path))


    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """The taxes ``x >= 0`` of an intervention ``-x [1, N, M..]`` per player at every joint action."""
        players, machines = self._players_and_machines(context)
        real = tuple(slice(0, len(machines)) for _ in players)
        taxes = SchedulingObjective().taxes(context, intervention.detach().double())[0]
        makespan = context["makespan"][0][real].double()
        columns = {f"tax {p}": taxes[i][real] for i, p in enumerate(players)}
        return _table(players, machines, {**columns, "makespan": makespan})

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """A joint ``[M..M]`` (real machines) by machine names, beside each joint action's makespan."""
        players, machines = self._players_and_machines(context)
        real = tuple(slice(0, len(machines)) for _ in players)
        return _table(players, machines, {"P": sigma.detach().double(),
                                          "makespan": context["makespan"][0][real].double()})

    def _players_and_machines(self, context: Context) -> tuple[list[str], list[str]]:
        """Player names and the machine names (every player chooses among the same machines)."""
        players, actions = self.names(context)
        return players, actions[0]

    def summary(self, context: Context) -> dict[str, Any]:
        """The names and the job times."""
        players, machines = self._players_and_machines(context)
        return {"players": players, "machines": machines,
                "times": context["times"][0][:, :len(machines)].double().tolist()}
