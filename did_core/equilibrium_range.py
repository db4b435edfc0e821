"""The designer's value over the whole eps-equilibrium set: its worst and best end by linear programming
(docs/mathematics.md, section 8).

Every value DID reports is measured at one equilibrium, the maximum-entropy one. Players
may settle anywhere in the eps-(C)CE polytope of the induced game

    P = {sigma : sigma >= 0 on real joint actions, 0 on padded ones, sum_a sigma(a) = 1, D sigma <= eps}

(docs/mathematics.md, section 2). For an objective linear in the joint
(:meth:`did_core.tasks.DesignObjective.linear_value`: ``value = c . sigma + const``) the
value over ``P`` is an interval whose ends are two linear programs over ``P``; they
are solved here with HiGHS (``scipy.optimize.linprog``) in float64, one context at a
time, on the real rows and real joint actions only, exactly at the tolerance the
blocks use for that context (``did_core.equilibria.constraints``). The ``worst``
end is the one worse for the designer (the maximum of a value it minimises).

Shapes: a context is a batch (every tensor ``[B, ...]``), interventions ``x [B, ...]``
as a generator returns them; ends ``[B]`` (float64, CPU).

Example (the scheduling plugin's expected makespan, minimised: ``worst >= best``, and the
maximum-entropy joint's makespan lies between them)::

    from did_scheduling import SchedulingObjective, SchedulingSampler
    context = SchedulingSampler(max_machines=4).sample(8, torch.Generator().manual_seed(0))
    objective = SchedulingObjective()
    x = objective.baseline_intervention(context)  # no tax
    worst, best = value_range(objective, context, x, get_concept("cce"), Epsilon(0.05))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog
from scipy.sparse import csr_array
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.concepts import Concept
from did_core.equilibria import Constraints, Epsilon, constraints
from did_core.games import check_games
from did_core.tasks import Context, DesignObjective, context_size, index_context

__all__ = ["RangeError", "ContextRanges", "linear_form", "value_range", "context_ranges", "worst_case_keep",
           "worst_case_value", "in_metric", "instance_ranges", "range_entry", "linear_value_error", "random_joints",
           "GUARD_TOLERANCE"]

#: HiGHS's primal and dual feasibility tolerances (its defaults are 1e-7).
LP_TOLERANCE = 1e-9

#: The most bytes of dense constraint rows formed at once (games whose rows are larger are formed one at a time).
DENSE_BYTES = 2 ** 27

#: The worst-case guard keeps an intervention only when its worst case beats the baseline's by more than this
#: (relative to ``max(1, |baseline's worst case|)``): two worst cases equal up to the LPs' round-off are a tie,
#: and a tie keeps the baseline.
GUARD_TOLERANCE = 1e-9


class RangeError(ValueError):
    """No range: the objective is not linear in the joint, or a context's eps-equilibrium set is empty."""


def linear_form(objective: DesignObjective, context: Context, x: Tensor) -> tuple[Tensor, Tensor]:
    """The objective's value as ``c . sigma + const``: ``c [B, J]`` (flat, C order of ``[A_1..A_N]``) and
    ``const [B]``, float64 on the CPU; :class:`RangeError` when the objective has no linear form.

    The form is computed from the context and ``x`` in float64, as ``value`` computes with a float64 joint.
    """
    with torch.no_grad():
        form = objective.linear_value(_double(context), _double(x))
    if form is None:
        raise RangeError(f"objective {type(objective).__name__} is not linear in the joint (its linear_value "
                         f"returns None): its value has no range over the equilibrium set")
    c, const = form
    c = c.detach().double().cpu()
    return c.reshape(c.shape[0], -1), const.detach().double().cpu().reshape(-1)


def linear_value_error(objective: DesignObjective, context: Context, x: Tensor, eq: Equilibrium,
                       sigma: Tensor | None = None) -> Tensor:
    """``|value - (c . sigma + const)|`` per context ``[B]`` (float64) at the joints of ``eq``, or at ``sigma
    [B, A_1..A_N]`` in its place: 0 up to round-off when the objective's ``linear_value`` is right (a check for a
    task's tests)."""
    eq = eq if sigma is None else replace(eq, sigma=sigma)
    c, const = linear_form(objective, context, x)
    with torch.no_grad():
        value = objective.value(_double(context), _double(x), replace(eq, sigma=eq.sigma.double()))
    linear = (c * eq.sigma.detach().double().cpu().reshape(c.shape)).sum(dim=1) + const
    return (value.detach().double().cpu() - linear).abs()


def random_joints(eq: Equilibrium, generator: torch.Generator) -> Tensor:
    """Random joints ``[B, A_1..A_N]`` (float64) with the support of ``eq.sigma``'s real joint actions: flat
    Dirichlet draws on the joint actions where ``eq.sigma > 0``, 0 elsewhere (for :func:`linear_value_error`)."""
    support = eq.sigma.detach().cpu() > 0
    draw = -torch.log(torch.rand(support.shape, generator=generator, dtype=torch.float64).clamp_min(1e-300))
    draw = draw * support
    return draw / draw.flatten(1).sum(dim=1).reshape(-1, *[1] * (draw.dim() - 1))


def _double(value: Any) -> Any:
    """A tensor, or every tensor of a context, in float64 where it is floating."""
    if isinstance(value, dict):
        return {k: _double(v) for k, v in value.items()}
    return value.double() if value.is_floating_point() else value


def _solve(gains: np.ndarray, eps: np.ndarray, c: np.ndarray) -> Any:
    """HiGHS's solution of ``min c . sigma`` over ``{sigma >= 0, sum sigma = 1, gains sigma <= eps}`` (real rows
    and joints only; ``gains [K, J]``, ``eps [K]``, ``c [J]``): ``scipy.optimize.linprog``'s result, with the duals
    ``ineqlin.marginals [K]`` (``d min / d eps <= 0``) and ``eqlin.marginals [1]``."""
    a_ub = csr_array(gains) if gains.shape[0] else None
    b_ub = eps if gains.shape[0] else None
    ones = np.ones((1, c.shape[0]))
    options = {"primal_feasibility_tolerance": LP_TOLERANCE, "dual_feasibility_tolerance": LP_TOLERANCE}
    return linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=ones, b_eq=[1.0], bounds=(0, None), method="highs",
                   options=options)


def _ends(gains: np.ndarray, eps: np.ndarray, c: np.ndarray) -> tuple[float, float, str | None]:
    """``min`` and ``max`` of ``c . sigma`` over ``{sigma >= 0, sum sigma = 1, gains sigma <= eps}`` (real rows
    and joints only; ``gains [K, J]``, ``eps [K]``, ``c [J]``), and why not (``None``: solved)."""
    ends = []
    for sign in (1.0, -1.0):
        res = _solve(gains, eps, sign * c)
        if res.status != 0:
            return np.nan, np.nan, f"HiGHS status {res.status}: {res.message}"
        ends.append(sign * float(res.fun))
    return ends[0], ends[1], None


def _real_gains(cons: Constraints) -> Iterator[tuple[int, np.ndarray]]:
    """Per game ``b`` of ``cons``: its dense rows ``D [K_b, J_b]`` (float64) on its real rows and real joint actions,
    the rows formed as many games at a time as fit in :data:`DENSE_BYTES`."""
    op = cons.operator
    n_games = cons.eps.shape[0]
    step = max(1, DENSE_BYTES // max(1, 8 * op.n_rows * op.joints))  # games whose dense rows fit
    with torch.no_grad():
        for first_game in range(0, n_games, step):
            batch = torch.arange(first_game, min(first_game + step, n_games), device=cons.eps.device)
            dense = op.rows(torch.arange(op.n_rows, device=cons.eps.device).expand(len(batch), -1), batch)
            for i, b in enumerate(batch.tolist()):
                yield b, dense[i][cons.rows[b]][:, cons.joint[b]].double().cpu().numpy()


def value_range(objective: DesignObjective, context: Context, x: Tensor, concept: Concept,
                eps: Epsilon | float, chunk: int = 16, first: int = 0) -> tuple[Tensor, Tensor]:
    """The worst and best value ``[B]`` (float64, CPU) of the objective over the eps-equilibrium set of each game
    that ``x [B, ...]`` induces in ``context`` under ``concept``: two LPs per context (HiGHS) on its real rows
    and joint actions, the games induced ``chunk`` contexts at a time and their rows formed as many games at a
    time as fit in :data:`DENSE_BYTES`.

    ``worst`` is the end worse for the designer (``objective.minimize``: the larger). Raises
    :class:`RangeError` for an objective without :meth:`~did_core.tasks.DesignObjective.linear_value`, and for a
    context whose set is empty (a concept may be infeasible), naming the context (``first`` + its index in the
    batch).
    """
    lows, highs = [], []
    for start in range(0, context_size(context), chunk):
        part, xs = index_context(context, slice(start, start + chunk)), x[start:start + chunk]
        c, const = linear_form(objective, part, xs)
        with torch.no_grad():
            games, mask = objective.induce(part, xs)
            games = games.detach().double()
            cons = constraints(games, check_games(games, mask), concept, eps)  # the block's checks and mask
            for b, gains in _real_gains(cons):
                rows, joint = cons.rows[b], cons.joint[b].cpu()
                low, high, why = _ends(gains, cons.eps[b, rows].cpu().numpy(), c[b][joint].numpy())
                if why is not None:
                    raise RangeError(f"context {first + start + b}: no range over its eps-equilibrium set under "
                                     f"concept {concept.name} ({why}); the set may be empty at this tolerance")
                lows.append(low + float(const[b]))
                highs.append(high + float(const[b]))
    low_t, high_t = torch.tensor(lows, dtype=torch.float64), torch.tensor(highs, dtype=torch.float64)
    return (high_t, low_t) if objective.minimize else (low_t, high_t)


def worst_case_value(objective: DesignObjective, context: Context, x: Tensor, concept: Concept,
                     eps: Epsilon | float, first: int = 0) -> Tensor:
    """The worst end of :func:`value_range` ``[B]`` (float64, on ``x``'s device), differentiable in ``x``
    (docs/mathematics.md, section 8, "Training for the worst case").

    One LP per context (HiGHS) gives the worst joint ``sigma*`` and the multipliers ``lambda* >= 0`` of the rows
    ``D sigma <= eps``; the value returned is the envelope-theorem surrogate

        c . sigma* + const - s * lambda* . (eps - D sigma*)        (s = -1 when the objective is minimised, else 1)

    with ``sigma*`` and ``lambda*`` constants and ``c``, ``const`` (:meth:`~did_core.tasks.DesignObjective.
    linear_value`), ``D sigma*`` and ``eps`` (:func:`did_core.equilibria.constraints` of the induced game) functions
    of ``x``. By complementary slackness its value is the LP's optimum; its gradient is the optimum's sensitivity
    to ``c``, ``D`` and ``eps`` (where the LP is degenerate, one of its subgradients). The sum-to-one constraint
    does not depend on ``x`` and adds nothing. Raises :class:`RangeError` as :func:`value_range` does.
    """
    form = objective.linear_value(_double(context), x.double())
    if form is None:
        raise RangeError(f"objective {type(objective).__name__} is not linear in the joint (its linear_value "
                         f"returns None): it has no worst case over the equilibrium set")
    c, const = form
    c, const = c.reshape(c.shape[0], -1), const.reshape(-1)
    games, mask = objective.induce(_double(context), x.double())
    cons = constraints(games.double(), check_games(games.detach().double(), mask), concept, eps)
    s = -1.0 if objective.minimize else 1.0  # worst = s * min_sigma (s c) . sigma + const
    c_cpu = c.detach().cpu()
    sigma = torch.zeros(c.shape, dtype=torch.float64)
    lam = torch.zeros(cons.eps.shape, dtype=torch.float64)
    for b, gains in _real_gains(cons):
        rows, joint = cons.rows[b].cpu(), cons.joint[b].cpu()
        res = _solve(gains, cons.eps[b, rows].detach().cpu().numpy(), s * c_cpu[b][joint].numpy())
        if res.status != 0:
            raise RangeError(f"context {first + b}: no worst case over its eps-equilibrium set under concept "
                             f"{concept.name} (HiGHS status {res.status}: {res.message}); the set may be empty")
        sigma[b, joint] = torch.from_numpy(res.x)
        if gains.shape[0]:
            lam[b, rows] = torch.from_numpy(-res.ineqlin.marginals)  # d min / d eps = -lambda
    sigma, lam = sigma.to(c.device), lam.to(c.device)
    slack = cons.eps - cons.operator.regrets(sigma)  # [B, K]: >= 0, and 0 where lambda > 0
    return (c.double() * sigma).sum(dim=1) + const.double() - s * (lam * slack).sum(dim=1)


def worst_case_keep(objective: DesignObjective, worst: Tensor, baseline_worst: Tensor) -> Tensor:
    """Per context ``[B]``: does the intervention's worst case beat the baseline's (beyond
    :data:`GUARD_TOLERANCE`)? The worst-case guard keeps the intervention exactly there, else the baseline."""
    margin = GUARD_TOLERANCE * baseline_worst.abs().clamp_min(1.0)
    return objective.improved(worst, baseline_worst) & ((worst - baseline_worst).abs() > margin)


@dataclass(frozen=True)
class ContextRanges:
    """Per context ``[B]``: the worst and best value of an intervention (``worst``, ``best``) and of the baseline
    intervention (``baseline_worst``, ``baseline_best``) over their eps-equilibrium sets (absolute values)."""

    worst: Tensor
    best: Tensor
    baseline_worst: Tensor
    baseline_best: Tensor

    def keep(self, objective: DesignObjective) -> Tensor:
        """Where the worst-case guard keeps the intervention ``[B]`` (bool): :func:`worst_case_keep`."""
        return worst_case_keep(objective, self.worst, self.baseline_worst)

    def guarded_worst(self, objective: DesignObjective) -> Tensor:
        """The worst case of the worst-case-guarded intervention ``[B]``: never worse than ``baseline_worst``."""
        return torch.where(self.keep(objective), self.worst, self.baseline_worst)

    @staticmethod
    def cat(parts: "list[ContextRanges]") -> "ContextRanges":
        """The ranges of several batches of contexts, in order."""
        return ContextRanges(*(torch.cat([getattr(p, k) for p in parts]) for k in
                               ("worst", "best", "baseline_worst", "baseline_best")))


def context_ranges(objective: DesignObjective, context: Context, x: Tensor, x0: Tensor, concept: Concept,
                   eps: Epsilon | float, first: int = 0) -> ContextRanges:
    """:func:`value_range` of an intervention ``x [B, ...]`` and of the baseline ``x0 [B, ...]`` in ``context``
    (``first``: the index of the first context, for messages)."""
    worst, best = value_range(objective, context, x, concept, eps, first=first)
    baseline_worst, baseline_best = value_range(objective, context, x0, concept, eps, first=first)
    return ContextRanges(worst, best, baseline_worst, baseline_best)


def in_metric(objective: DesignObjective, value: Tensor, reference: Tensor) -> Tensor:
    """Absolute values in the objective's metric: minus ``reference`` (the baseline intervention's value at its
    maximum-entropy equilibrium, the metric's own reference) for an objective that reports a change, else as
    they are."""
    return value - reference if objective.report_change else value


def instance_ranges(objective: DesignObjective, context: Context, x: Tensor, concept: Concept,
                    eps: Epsilon | float) -> ContextRanges:
    """The ranges of one instance (``context`` a batch of one, ``x [1, ...]``) with and without the intervention
    (``did design --range``): :func:`context_ranges` against the objective's ``baseline_intervention``."""
    with torch.no_grad():
        x0 = objective.baseline_intervention(context).to(x.dtype)
    return context_ranges(objective, context, x, x0, concept, eps)


def range_entry(objective: DesignObjective, ranges: ContextRanges, value_without: float) -> dict[str, object]:
    """``did design --json``'s range keys for one block whose baseline value (at its maximum-entropy equilibrium)
    is ``value_without``: ``range_without`` and ``range_with``, each ``[worst, best]`` in the task's metric
    (:func:`in_metric`), and ``worst_case_guard``: the two worst cases (in the metric) and what the worst-case
    guard keeps (``"intervention"`` or ``"baseline"``)."""
    reference = torch.tensor([value_without], dtype=torch.float64)

    def metric(t: Tensor) -> float:
        return float(in_metric(objective, t[:1], reference)[0])

    keep = bool(ranges.keep(objective)[0])
    return {"range_without": [metric(ranges.baseline_worst), metric(ranges.baseline_best)],
            "range_with": [metric(ranges.worst), metric(ranges.best)],
            "worst_case_guard": {"worst_without": metric(ranges.baseline_worst), "worst_with": metric(ranges.worst),
                                 "kept": "intervention" if keep else "baseline"}}
