"""Per-instance contract search: screen hundreds of contracts through a block, then gradient ascent from the best few.

The principal's utility ``U(sigma*(t), t)`` is far from concave in the contract
``t``. In many contexts its gradient at ``t = 0`` is negative in every coordinate
(a little pay buys no change of behaviour, only costs), so zero is a strict local
maximum, yet a bonus of the right size further out is worth +0.3 or more; often
only a narrow band of bonus sizes works (a window of ratio 1.6 in one measured
context). One ascent from zero finds none of that. :func:`optimise_contracts`
therefore searches in two stages:

1. **Screening** (no gradients): every candidate of :func:`screening_candidates`
   is solved for every context in a few batched calls of the block --

   * no contract;
   * a bonus on one outcome (each of the ``top_outcomes`` outcomes of highest
     value), paid to one agent or to every agent, of size ``s x (max v - min v)``
     for ``s`` in ``scales`` (1/64 to 1, ratio sqrt 2);
   * linear contracts ``t_i(w) = a_i (v(w) - min v)``, ``a_i`` in ``shares``
     (every pair for two agents; for other counts a shared ``a`` and one agent at
     a time). ``v - min v`` rather than ``v``: the two give agent ``i`` the same
     incentives (they differ by a constant per agent, which cancels in every
     deviation gain) and ``v - min v`` is the cheapest non-negative one;
   * ``start``, an extra start ``[B, N, M]`` (e.g. a generator's output).

   Uniform payments are no candidate: a constant paid to agent ``i`` on every
   outcome adds a constant to all of ``i``'s payoffs, which changes no
   equilibrium (docs/mathematics.md, 3.1), so it only costs, and ascent from it
   retraces ascent from zero.
2. **Ascent**: projected Adam on the contract itself (``t <- max(t, 0)`` after
   each step, so zeros are exact and an entry leaves zero only where paying there
   helps) for ``steps`` steps of about ``lr`` payment units (:func:`payment_unit`)
   each, from the ``keep`` best distinct candidates of every context by utility
   and the ``keep_earned`` best of the rest by the value of the play they induce
   with payments not deducted. Those over-pay but move the agents well; their
   ascent weighs payments by ``lam`` rising linearly from ``earned_weight`` to 1
   over the first ``ramp`` of the steps, so it first holds on to the good play
   and then trims what it pays (as training ramps its payment weight). Every
   start of every context of a size group runs in one batch, each block call
   warm-started from the previous duals.

The best contract met anywhere (a screened candidate or any iterate of any
start, by the principal's utility) is returned per context, and no contract
where nothing beats it: never worse than no contract under the block. A solve the
block flags unconverged never counts. Contexts are solved in size groups cropped
to their real actions and outcomes (:mod:`did_core.grouping`): padding changes no
answer, only the cost. :func:`search_budget` says what a call spends.

Measured (relative eps 0.05, ``exact_newton``, 64 paper-profile contexts of seed
777, 200 steps; ``python benchmarks/per_instance.py --task contract --concept cce|ce``):
CCE +0.068 (screening alone +0.046; the former ascent from 4 value-share starts
+0.053; random search, 2000 random contracts per context and ascent from the best
12, +0.069), CE +0.044 (former +0.031, random search +0.041). On 256 contexts
(``--contexts 256``): CCE +0.111, CE +0.095. Twice the starts (8 + 4): +0.113 there.

Shapes: a context holds ``costs [B, N, A..A]``, ``transitions [B, A..A, M]``,
``values [B, M]``, ``mask [B, N, A]``, ``outcome_mask [B, M]``; contracts are ``[B, N, M]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from did_core.blocks import EquilibriumBlock, SolveTooLarge
from did_core.concepts import Concept
from did_core.convergence import counting
from did_core.equilibria import Epsilon
from did_core.grouping import size_groups
from did_core.tasks import Context, index_context
from did_contract.task import (ContractSampler, induced_games, outcome_distribution, payment_unit, principal_utility,
                               real_range)

__all__ = ["optimise_contracts", "screening_candidates", "screen_contracts", "bonus_grid", "bonus_gains",
           "search_budget", "SearchBudget",
           "SCALES", "SHARES", "TOP_OUTCOMES", "KEEP", "KEEP_EARNED"]

#: Bonus sizes as fractions of the value span ``max v - min v``: 1/64 to 1, ratio sqrt 2.
SCALES: tuple[float, ...] = tuple(2 ** (k / 2) / 64 for k in range(13))
#: Shares ``a`` of the linear contracts ``t_i(w) = a (v(w) - min v)``.
SHARES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35)
#: Bonus candidates on this many outcomes of highest value (every outcome of the sampling's ``m <= 10``).
TOP_OUTCOMES: int = 10
#: Ascent starts per context: the best screened candidates by the principal's utility ...
KEEP: int = 4
#: ... and then the best of the rest by the value of the play they induce, payments not deducted.
KEEP_EARNED: int = 2
#: The payment weight those ``KEEP_EARNED`` ascents start from (rising to 1 over ``RAMP`` of the steps).
EARNED_WEIGHT: float = 0.1
RAMP: float = 0.5
#: Screening solves about this many entries (games x joint actions x rows) per block call (memory, not results).
SCREEN_ENTRIES: int = 2 ** 24
#: Size groups a batch is split into (:func:`did_core.grouping.size_groups`).
MAX_GROUPS: int = 8


@dataclass(frozen=True)
class SearchBudget:
    """What one :func:`optimise_contracts` call spends: ``screened`` candidate solves in all (no gradient),
    ``starts`` ascents of ``steps`` steps for each of ``contexts`` contexts (a solve and its backward pass per
    step, and a last solve)."""

    contexts: int
    screened: int
    starts: int
    steps: int

    @property
    def solves(self) -> int:
        """Block solves in all."""
        return self.screened + self.contexts * self.starts * (self.steps + 1 if self.steps else 0)

    def describe(self) -> str:
        """One line, e.g. ``"screened 142 contracts, then ascent from the best 6 x 200 steps: 1348 block solves"``."""
        contexts = f" for {self.contexts} contexts" if self.contexts != 1 else ""
        ascent = (f"ascent from the best {self.starts} x {self.steps} steps" if self.solves > self.screened
                  else "no ascent")
        return f"screened {self.screened} contracts{contexts}, then {ascent}: {self.solves} block solves"


def _linear_shares(n_agents: int, shares: tuple[float, ...]) -> list[tuple[float, ...]]:
    """The share vectors ``a [N]`` of the linear candidates: all pairs for 2 agents, else shared and one-hot."""
    if n_agents == 2:
        return [a for a in itertools.product((0.0, *shares), repeat=2) if any(a)]
    rows = [(a,) * n_agents for a in shares]
    if n_agents > 1:
        rows += [tuple(a if j == i else 0.0 for j in range(n_agents)) for a in shares for i in range(n_agents)]
    return rows


def screening_candidates(context: Context, scales: tuple[float, ...] = SCALES, shares: tuple[float, ...] = SHARES,
                         top_outcomes: int = TOP_OUTCOMES) -> tuple[Tensor, Tensor, list[str]]:
    """The screened contracts ``[B, K, N, M]`` (float64, 0 on padded outcomes), which are real ``[B, K]``, and a
    name for each of the ``K`` (see the module docstring).

    ``K`` depends on the agent count only; the bonuses on the ``r``-th best outcome of a context with fewer than
    ``r`` outcomes are not real: never solved, never chosen.
    """
    values, real = context["values"].double(), context["outcome_mask"]
    batch, m = values.shape
    n_agents = context["costs"].shape[1]
    span = real_range(values, real).view(batch, 1)
    low = torch.where(real, values, torch.inf).amin(dim=1, keepdim=True)
    ranked = torch.where(real, values, -torch.inf).argsort(dim=1, descending=True)
    count = real.sum(dim=1, keepdim=True)
    zeros = values.new_zeros(batch, n_agents, m)
    everyone = torch.ones(batch, dtype=torch.bool, device=values.device)
    rows, valid, names = [zeros], [everyone], ["no contract"]
    for r in range(top_outcomes):
        onehot = torch.zeros_like(values).scatter_(1, ranked[:, r:r + 1] if r < m else ranked[:, :1], 1.0)
        has = count.view(-1) > r
        for s in scales:
            bonus = s * span * onehot  # [B, M]
            for i in range(n_agents):
                t = zeros.clone()
                t[:, i] = bonus
                rows.append(t)
                valid.append(has)
                names.append(f"bonus {s:.3g} x span on outcome #{r + 1} to agent {i + 1}")
            if n_agents > 1:
                rows.append(bonus.unsqueeze(1).expand(-1, n_agents, -1).clone())
                valid.append(has)
                names.append(f"bonus {s:.3g} x span on outcome #{r + 1} to every agent")
    above = ((values - low) * real).unsqueeze(1)  # [B, 1, M]
    for a in _linear_shares(n_agents, shares):
        rows.append(torch.tensor(a, dtype=values.dtype, device=values.device).view(1, -1, 1) * above)
        valid.append(everyone)
        names.append("linear " + ", ".join(f"{x:g}" for x in a) + " x (v - min v)")
    return torch.stack(rows, dim=1), torch.stack(valid, dim=1), names


def search_budget(context: Context, steps: int, *, start: Tensor | None = None, keep: int = KEEP,
                  keep_earned: int = KEEP_EARNED, scales: tuple[float, ...] = SCALES,
                  shares: tuple[float, ...] = SHARES, top_outcomes: int = TOP_OUTCOMES, **_: object) -> SearchBudget:
    """What :func:`optimise_contracts` spends with the same arguments on ``context`` (other options ignored)."""
    _, valid, _ = screening_candidates(context, scales, shares, top_outcomes)
    batch = int(valid.shape[0])
    starts = keep + keep_earned if steps > 0 else 0
    return SearchBudget(batch, int(valid.sum()) + (batch if start is not None else 0), starts, steps)


def _solve(block: EquilibriumBlock, context: Context, contracts: Tensor, concept: Concept, eps: Epsilon,
           alpha0: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The principal's utility ``[B]``, the expected payments ``[B]``, whether the block converged ``[B]`` and its
    duals (a warm start for the next call)."""
    eq = block(induced_games(context, contracts), context["mask"], concept=concept, eps=eps, alpha0=alpha0)
    utility = principal_utility(context, contracts, eq.sigma)
    paid = (outcome_distribution(context, eq.sigma) * contracts.sum(dim=1)).sum(dim=1)
    converged = eq.info.get("converged")
    ok = torch.ones_like(utility, dtype=torch.bool) if converged is None else converged.to(torch.bool).view(-1)
    return utility, paid, ok & utility.detach().isfinite(), eq.alpha


def screen_contracts(block: EquilibriumBlock, context: Context, candidates: Tensor, valid: Tensor,
                     concept: Concept, eps: Epsilon, entries: int = SCREEN_ENTRIES) -> tuple[Tensor, Tensor]:
    """The utility ``[B, K]`` of every real (``valid [B, K]``) candidate ``[B, K, N, M]`` and the value of the play
    it induces, payments not deducted (``-inf`` for the others and where the block did not converge).

    A call holds about ``entries / (J sum_i A_i^2)`` games (``J`` joint actions; ``sum_i A_i^2`` bounds the rows of
    CE); one the block refuses as too large is split in halves."""
    batch, k = candidates.shape[:2]
    flat = candidates.reshape(batch * k, *candidates.shape[2:])
    which = valid.reshape(-1).nonzero().view(-1)
    sizes = context["transitions"].shape[1:-1]
    chunk = max(1, entries // (math.prod(sizes) * sum(a * a for a in sizes)))
    utility = torch.full((batch * k,), -torch.inf, dtype=torch.float64, device=flat.device)
    earned = utility.clone()
    first = 0
    with torch.no_grad():
        while first < len(which):
            part = which[first:first + chunk]
            try:
                u, paid, ok, _ = _solve(block, index_context(context, part // k), flat[part], concept, eps)
            except SolveTooLarge:
                if chunk == 1:
                    raise
                chunk //= 2
                continue
            utility[part] = torch.where(ok, u.double(), -torch.inf)
            earned[part] = torch.where(ok, (u + paid).double(), -torch.inf)
            first += len(part)
    return utility.view(batch, k), earned.view(batch, k)


def _cropped_groups(context: Context, max_groups: int) -> Iterator[tuple[Tensor, Context]]:
    """The contexts as size groups (:mod:`did_core.grouping`), each cropped to its real actions and outcomes and
    in float64: ``(members [Bg], part)``, ``part`` of ``M_g = part["values"].shape[1]`` outcomes."""
    batch, n_agents = context["costs"].shape[:2]
    sampler = ContractSampler(n_players=n_agents)
    for members, lengths in size_groups(sampler.extents(context), max_groups if batch > 1 else 1):
        members = members.to(context["values"].device)
        part = sampler.crop(index_context(context, members), lengths)
        yield members, {k: v.double() if v.is_floating_point() else v for k, v in part.items()}


def bonus_grid(context: Context, scales: tuple[float, ...] = SCALES) -> Tensor:
    """Every bonus contract ``[B, R, S, M, N, M]``: ``scales[s] x (max v - min v)`` paid on outcome ``w`` to agent
    ``r`` (``r < N``) or, for ``N > 1``, to every agent (``r = N``); ``R = N + 1`` (1 for one agent). Bonuses on
    padded outcomes are zero contracts (never real)."""
    values, real = context["values"].double(), context["outcome_mask"]
    batch, m = values.shape
    n_agents = context["costs"].shape[1]
    span = real_range(values, real).view(batch, 1, 1, 1, 1, 1)
    size = torch.tensor(scales, dtype=values.dtype, device=values.device).view(1, 1, -1, 1, 1, 1)
    outcome = torch.eye(m, dtype=values.dtype, device=values.device).view(1, 1, 1, m, 1, m)
    recipients = torch.eye(n_agents, dtype=values.dtype, device=values.device)
    if n_agents > 1:
        recipients = torch.cat([recipients, recipients.new_ones(1, n_agents)])
    who = recipients.view(1, -1, 1, 1, n_agents, 1)
    return span * size * outcome * who * real.to(values.dtype).view(batch, 1, 1, m, 1, 1)


def bonus_gains(context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon | float,
                scales: tuple[float, ...] = SCALES, screen_entries: int = SCREEN_ENTRIES,
                max_groups: int = MAX_GROUPS) -> Tensor:
    """What every bonus of :func:`bonus_grid` changes in the principal's utility against no contract under
    ``block``: ``[B, R, S, M]`` float64, NaN on padded outcomes and where the block did not converge.

    Solved without gradients in size groups cropped to their real actions and outcomes, as the screening of
    :func:`optimise_contracts` is (``screen_entries``, ``max_groups``: memory and speed, not results)."""
    eps = Epsilon.of(eps)
    batch, n_agents = context["costs"].shape[:2]
    m = context["values"].shape[1]
    recipients = n_agents + 1 if n_agents > 1 else 1
    gains = torch.full((batch, recipients, len(scales), m), torch.nan, dtype=torch.float64,
                       device=context["values"].device)
    with counting():
        for members, part in _cropped_groups(context, max_groups):
            grid = bonus_grid(part, scales)  # [Bg, R, S, Mg, N, Mg]
            real = part["outcome_mask"].view(len(members), 1, 1, -1).expand(grid.shape[:4])
            none = grid.new_zeros(len(members), 1, *grid.shape[4:])  # no contract, candidate 0
            candidates = torch.cat([none, grid.flatten(1, 3)], dim=1)
            valid = torch.cat([torch.ones_like(real[:, 0, 0, :1]), real.flatten(1)], dim=1)
            utility, _ = screen_contracts(block, part, candidates, valid, concept, eps, screen_entries)
            change = utility[:, 1:] - utility[:, :1]
            change = torch.where(change.isfinite(), change, torch.full_like(change, torch.nan))
            gains[members, :, :, :grid.shape[3]] = change.view(grid.shape[:4])
    return gains


def _pick(candidates: Tensor, scores: tuple[Tensor, ...], counts: tuple[int, ...]) -> Tensor:
    """Ascent starts ``[B, sum(counts)]``: per context the ``counts[0]`` best candidates by ``scores[0] [B, K]``,
    then the ``counts[1]`` best of the rest by ``scores[1]``; exact duplicates and unsolved candidates are
    skipped while others remain (then the first pick repeats)."""
    chosen = []
    for b in range(candidates.shape[0]):
        picked: list[int] = []
        for score, count in zip(scores, counts):
            goal = len(picked) + count
            for j in score[b].argsort(descending=True).tolist():
                if len(picked) == goal or score[b, j] == -torch.inf:
                    break
                if not any(torch.equal(candidates[b, j], candidates[b, i]) for i in picked):
                    picked.append(j)
        picked += [picked[0] if picked else 0] * (sum(counts) - len(picked))
        chosen.append(picked)
    return torch.tensor(chosen, dtype=torch.long, device=candidates.device)


def _ascend(block: EquilibriumBlock, context: Context, starts: Tensor, concept: Concept, eps: Epsilon,
            steps: int, rate: Tensor, weight: Tensor, ramp: float) -> tuple[Tensor, Tensor]:
    """Projected Adam from ``starts [R, N, M]``, steps of about ``rate [R]`` payment units, on the value of the
    play minus ``lam`` x the payments, ``lam`` linear from ``weight [R]`` to 1 over the first ``ramp`` of the
    steps: the best iterate per row by the principal's utility (``lam = 1``) and that utility ``[R]`` (``-inf``:
    no iterate converged)."""
    real = context["outcome_mask"].unsqueeze(1).to(starts.dtype)
    scale = rate.view(-1, 1, 1)
    theta = (starts * real / scale).clone().requires_grad_(True)  # t = rate * theta: Adam steps of about rate
    optimiser = torch.optim.Adam([theta], lr=1.0)
    best = starts.clone()
    best_value = torch.full((starts.shape[0],), -torch.inf, dtype=torch.float64, device=starts.device)
    alpha = None
    for step in range(steps + 1):
        contracts = scale * theta * real
        last = step == steps
        with torch.set_grad_enabled(not last):
            utility, paid, ok, alpha = _solve(block, context, contracts, concept, eps, alpha)
        value = torch.where(ok, utility.detach().double(), -torch.inf)
        better = value > best_value
        best = torch.where(better.view(-1, 1, 1), contracts.detach(), best)
        best_value = torch.where(better, value, best_value)
        if last:
            break
        lam = weight + (1 - weight) * min(1.0, step / max(ramp * steps, 1e-12))
        optimiser.zero_grad()
        (-(utility + (1 - lam) * paid).sum()).backward()
        optimiser.step()
        with torch.no_grad():
            theta.clamp_(min=0.0)
    return best, best_value


def optimise_contracts(context: Context, block: EquilibriumBlock, concept: Concept,
                       eps: Epsilon | float = 0.05, steps: int = 200, lr: float = 0.05, *,
                       start: Tensor | None = None, keep: int = KEEP, keep_earned: int = KEEP_EARNED,
                       scales: tuple[float, ...] = SCALES, shares: tuple[float, ...] = SHARES,
                       top_outcomes: int = TOP_OUTCOMES, earned_weight: float = EARNED_WEIGHT, ramp: float = RAMP,
                       screen_entries: int = SCREEN_ENTRIES, max_groups: int = MAX_GROUPS) -> Tensor:
    """Per-instance contracts ``[B, N, M]``: screening, then ascent from the best few (see the module docstring).

    **Arguments:** the task's per-instance signature ``(context, block, concept, eps, steps, lr)``: ``steps``
    Adam steps of about ``lr`` payment units (:func:`payment_unit`) each; ``start [B, N, M]``: one more screened
    contract per context (e.g. a generator's output; negative entries count as 0); ``keep``,
    ``keep_earned``, ``earned_weight``, ``ramp``: the ascent starts; ``scales``, ``shares``, ``top_outcomes``:
    the screened candidates (:func:`screening_candidates`); ``screen_entries``, ``max_groups``: batching
    (memory and speed, not results). :func:`search_budget` says what a call spends.

    **Returns:** float64 contracts ``[B, N, M]``, 0 on padded outcomes: per context the best met, or zeros where
    nothing beats no contract under ``block``.
    """
    eps = Epsilon.of(eps)
    batch, n_agents = context["costs"].shape[:2]
    m = context["values"].shape[1]
    if start is not None and tuple(start.shape) != (batch, n_agents, m):
        raise ValueError(f"start must be contracts [{batch}, {n_agents}, {m}], got {list(start.shape)}")
    result = context["values"].new_zeros(batch, n_agents, m, dtype=torch.float64)
    starts_per = keep + keep_earned if steps > 0 else 0
    with counting():  # unconverged solves are never kept; their warnings would only be noise here
        for members, part in _cropped_groups(context, max_groups):
            real = part["outcome_mask"]
            outcomes = real.shape[1]
            candidates, valid, _ = screening_candidates(part, scales, shares, top_outcomes)
            if start is not None:
                extra = start[members, :, :outcomes].detach().double().clamp_min(0.0) * real.unsqueeze(1)
                candidates = torch.cat([candidates, extra.unsqueeze(1)], dim=1)
                valid = torch.cat([valid, valid[:, :1]], dim=1)
            utility, earned = screen_contracts(block, part, candidates, valid, concept, eps, screen_entries)
            rows = torch.arange(len(members), device=result.device)
            top = utility.argmax(dim=1)
            best, best_value = candidates[rows, top], utility[rows, top]
            if starts_per > 0:
                chosen = _pick(candidates, (utility, earned), (keep, keep_earned))  # [Bg, k]
                origins = candidates[rows.unsqueeze(1), chosen].flatten(0, 1)
                repeated = index_context(part, rows.repeat_interleave(starts_per))
                rate = lr * payment_unit(part).repeat_interleave(starts_per)
                weight = torch.tensor([1.0] * keep + [earned_weight] * keep_earned, dtype=torch.float64,
                                      device=result.device).repeat(len(members))
                found, value = _ascend(block, repeated, origins, concept, eps, steps, rate, weight, ramp)
                value = value.view(-1, starts_per)
                j = value.argmax(dim=1)
                better = value[rows, j] > best_value
                best = torch.where(better.view(-1, 1, 1), found.view(-1, starts_per, *found.shape[1:])[rows, j], best)
                best_value = torch.where(better, value[rows, j], best_value)
            # Candidate 0 is no contract: kept wherever nothing beats it, or where it did not converge (no proof).
            beats = (best_value > utility[:, 0]) & utility[:, 0].isfinite()
            result[members, :, :outcomes] = torch.where(beats.view(-1, 1, 1), best, torch.zeros_like(best))
    return result
