"""The designer's value over the eps-equilibrium set (did_core.equilibrium_range, docs/mathematics.md, section 8).

Checked against independent truth: an LP written here with cvxpy (Clarabel, not HiGHS) over the constraints
written from their definition (loops over players and actions, not did_core's operators), on 2x2, 2x3 (padded to
3x3) and 2x2x2 games, for CE and CCE, relative and absolute eps. Then: the maximum-entropy joint's value lies in
the range, the range grows with eps, ``minimize`` decides which end is the worst, an objective without a linear
form and an empty equilibrium set are refused in one line, and the held-out evaluation stores the range and the
worst-case guard keeps its promise.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor

import toys
from did_core.concepts import Concept, ConstraintOperator, DenseOperator, StackedOperator
from did_core.config import resolve_train_config
from did_core.equilibria import Epsilon
from did_core.equilibrium_range import (RangeError, context_ranges, instance_ranges, range_entry, value_range,
                                        worst_case_keep)
from did_core.evaluate import evaluate_generator
from did_core.plugins import create, get_concept
from did_core.results import range_table
from did_core.tasks import Context
from did_core.train import build_components

cp = pytest.importorskip("cvxpy")


class LinearToy(toys.ToyObjective):
    """The toy objective (``-P(0, 0)``, minimised) with its linear form."""

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        c = torch.zeros_like(context["base"][:, 0], dtype=intervention.dtype)
        c[(slice(None),) + (0,) * (c.dim() - 1)] = -1.0
        return c, c.new_zeros(c.shape[0])


class WeightedGame(toys.ToyObjective):
    """A game ``base + x`` of any player count, valued ``sum_a sigma(a) w(a) + 0.5`` (maximised or minimised)."""

    minimize: ClassVar[bool] = False

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        real = toys.real_joints(context["mask"], context["base"].shape[2:]).unsqueeze(1)
        return (context["base"].to(intervention.dtype) + intervention) * real, context["mask"]

    def value(self, context, intervention, eq):
        return (eq.sigma * context["weights"].to(eq.sigma.dtype)).flatten(1).sum(dim=1) + 0.5

    def linear_value(self, context, intervention):
        weights = context["weights"]
        return weights, torch.full(weights.shape[:1], 0.5, dtype=weights.dtype)


class MinimisedWeightedGame(WeightedGame):
    minimize: ClassVar[bool] = True


# ------------------------------------------------------------------------------------ the independent LP

def _scale(game: np.ndarray, p: int) -> float:
    """``s_p``: RMS over the joint actions of ``G[p]`` minus its mean over ``p``'s own actions."""
    centred = game[p] - game[p].mean(axis=p, keepdims=True)
    return float(np.sqrt((centred ** 2).mean()))


def _definition_rows(game: np.ndarray, concept: str, eps: Epsilon) -> tuple[list[np.ndarray], list[float]]:
    """The eps-(C)CE rows of one unpadded game ``[N, A_1..A_N]`` written from their definition."""
    n, sizes = game.shape[0], game.shape[1:]
    rows, tolerance = [], []
    for p in range(n):
        eps_p = eps.value * _scale(game, p) if eps.relative else eps.value
        recommendations = [None] if concept == "cce" else range(sizes[p])
        for r in recommendations:
            for d in range(sizes[p]):
                if r is not None and r == d:
                    continue
                row = np.zeros(sizes)
                for a in itertools.product(*[range(k) for k in sizes]):
                    if r is not None and a[p] != r:
                        continue
                    deviated = a[:p] + (d,) + a[p + 1:]
                    row[a] = game[p][deviated] - game[p][a]
                rows.append(row.ravel())
                tolerance.append(eps_p)
    return rows, tolerance


def _reference_range(game: np.ndarray, weights: np.ndarray, concept: str, eps: Epsilon) -> tuple[float, float]:
    """``min`` and ``max`` of ``weights . sigma`` over the eps-(C)CE of ``game`` by cvxpy with Clarabel."""
    rows, tolerance = _definition_rows(game, concept, eps)
    sigma = cp.Variable(weights.size)
    cons = [sigma >= 0, cp.sum(sigma) == 1, np.array(rows) @ sigma <= np.array(tolerance)]
    ends = []
    for sense in (cp.Minimize, cp.Maximize):
        problem = cp.Problem(sense(weights.ravel() @ sigma), cons)
        problem.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
        assert problem.status == "optimal"
        ends.append(float(problem.value))
    return ends[0], ends[1]


def _context(shapes: list[tuple[int, ...]], seed: int) -> Context:
    """Random games of the given real shapes, padded to a common one, with random weights (zero on padding)."""
    g = torch.Generator().manual_seed(seed)
    n = len(shapes[0])
    a_max = max(max(s) for s in shapes)
    mask = torch.zeros(len(shapes), n, a_max, dtype=torch.bool)
    for b, shape in enumerate(shapes):
        for p, k in enumerate(shape):
            mask[b, p, :k] = True
    real = toys.real_joints(mask, (a_max,) * n)
    base = torch.randn(len(shapes), n, *(a_max,) * n, generator=g, dtype=torch.float64) * real.unsqueeze(1)
    weights = torch.randn(len(shapes), *(a_max,) * n, generator=g, dtype=torch.float64) * real
    return {"base": base, "mask": mask, "weights": weights}


def _cut(context: Context, b: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    index = tuple(slice(0, k) for k in shape)
    return context["base"][b][(slice(None),) + index].numpy(), context["weights"][b][index].numpy()


CASES = {"2x2": [(2, 2)] * 3, "2x3 padded": [(2, 3), (3, 2), (3, 3)], "2x2x2": [(2, 2, 2)] * 2}


@pytest.mark.parametrize("concept", ["cce", "ce"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("eps", [Epsilon(0.05), Epsilon(0.3), Epsilon(0.1, relative=False)], ids=str)
def test_the_range_is_the_independent_lp(case, concept, eps):
    shapes = CASES[case]
    context = _context(shapes, seed=len(case) + len(concept))
    x = torch.zeros_like(context["base"])
    worst, best = value_range(WeightedGame(), context, x, get_concept(concept), eps)
    for b, shape in enumerate(shapes):
        low, high = _reference_range(*_cut(context, b, shape), concept, eps)
        assert float(worst[b]) == pytest.approx(low + 0.5, abs=1e-7)
        assert float(best[b]) == pytest.approx(high + 0.5, abs=1e-7)


def test_rows_formed_one_game_at_a_time_give_the_same_range(monkeypatch):
    import did_core.equilibrium_range as module

    context = _context(CASES["2x3 padded"], seed=2)
    x = torch.zeros_like(context["base"])
    batched = value_range(WeightedGame(), context, x, get_concept("ce"), 0.05)
    monkeypatch.setattr(module, "DENSE_BYTES", 1)
    one_by_one = value_range(WeightedGame(), context, x, get_concept("ce"), 0.05)
    assert all(torch.equal(a, b) for a, b in zip(batched, one_by_one))


def test_minimise_makes_the_larger_end_the_worst():
    context = _context(CASES["2x2x2"], seed=3)
    x = torch.zeros_like(context["base"])
    worst, best = value_range(WeightedGame(), context, x, get_concept("cce"), 0.2)
    worst_min, best_min = value_range(MinimisedWeightedGame(), context, x, get_concept("cce"), 0.2)
    assert torch.equal(worst_min, best) and torch.equal(best_min, worst)
    assert bool((worst < best).all())


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_the_maximum_entropy_value_lies_in_the_range(concept):
    context = _context(CASES["2x3 padded"] + [(3, 3)], seed=7)
    x = 0.3 * torch.randn(context["base"].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    objective, block = WeightedGame(), create("blocks", toys.TOY_BLOCK)
    games, mask = objective.induce(context, x)
    eq = block(games, mask, concept=get_concept(concept), eps=0.05)
    me = objective.value(context, x, eq)
    worst, best = value_range(objective, context, x, get_concept(concept), 0.05)
    assert bool((worst <= me + 1e-8).all()) and bool((me <= best + 1e-8).all())


def test_the_range_widens_as_eps_grows():
    context = _context(CASES["2x3 padded"], seed=11)
    x = torch.zeros_like(context["base"])
    ends = [value_range(WeightedGame(), context, x, get_concept("ce"), e) for e in (0.01, 0.05, 0.2, 1.0, 5.0)]
    for (w0, b0), (w1, b1) in zip(ends, ends[1:]):
        assert bool((w1 <= w0 + 1e-9).all()) and bool((b1 >= b0 - 1e-9).all())
    assert bool((ends[-1][1] - ends[-1][0] > ends[0][1] - ends[0][0]).all())


def test_an_objective_that_is_not_linear_has_no_range():
    context = _context(CASES["2x2"], seed=0)
    with pytest.raises(RangeError, match=r"objective ToyObjective is not linear in the joint"):
        value_range(toys.ToyObjective(), context, torch.zeros_like(context["base"]), get_concept("cce"), 0.05)


class EmptyCCE(Concept):
    """The CCE rows and ``sum_a sigma(a) <= 0`` on games whose payoff ``G[0][0, 0]`` is positive: no joint there."""

    name = "test_empty"

    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        cce = get_concept("cce").operator(games, mask)
        empty = (games[:, 0, 0, 0] > 0).to(games.dtype).reshape(-1, 1, 1).expand(-1, 1, cce.joints)
        return StackedOperator([cce, DenseOperator.extra_rows(cce, empty)])


def test_an_empty_equilibrium_set_is_refused_naming_the_context():
    context = _context(CASES["2x2"], seed=0)
    context["base"][:, 0, 0, 0] = torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)
    with pytest.raises(RangeError, match=r"^context 2: no range over its eps-equilibrium set under concept "
                                         r"test_empty \(HiGHS status 2: .*\); the set may be empty at this tolerance$"):
        value_range(WeightedGame(), context, torch.zeros_like(context["base"]), EmptyCCE(), 0.05)


def test_the_worst_case_guard_keeps_only_strictly_better_worst_cases():
    objective = WeightedGame()  # maximised
    worst, baseline = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 2.0 - 1e-12, 3.5])
    assert worst_case_keep(objective, worst, baseline).tolist() == [True, False, False]
    assert worst_case_keep(MinimisedWeightedGame(), worst, baseline).tolist() == [False, False, True]


def test_instance_ranges_in_the_metric():
    context = _context([(2, 3)], seed=5)
    objective = WeightedGame()
    x = torch.ones_like(context["base"])
    ranges = instance_ranges(objective, context, x, get_concept("cce"), 0.05)
    entry = range_entry(objective, ranges, value_without=0.25)
    assert entry["range_with"] == [float(ranges.worst[0]), float(ranges.best[0])]  # an absolute metric

    class Change(WeightedGame):
        report_change: ClassVar[bool] = True

    entry = range_entry(Change(), ranges, value_without=0.25)
    assert entry["range_without"] == pytest.approx([float(ranges.baseline_worst[0]) - 0.25,
                                                    float(ranges.baseline_best[0]) - 0.25])
    assert entry["worst_case_guard"]["kept"] in ("intervention", "baseline")


# ------------------------------------------------------------------------------------ held-out evaluation

TINY = {"task": "toy_task", "steps": 3, "batch_size": 4, "eval_contexts": 6,
        "sampler_options": {"min_actions": 2, "max_actions": 3}, "generator_options": {"width": 8, "depth": 1}}


def test_evaluation_stores_the_range_and_the_worst_case_guard_keeps_its_promise():
    cfg = resolve_train_config(TINY)
    parts = build_components(cfg)
    parts = replace(parts, objective=LinearToy())
    blocks = [cfg.exact_block]
    plain = evaluate_generator(cfg, parts, blocks, contexts=12, seed=5)
    ranged = evaluate_generator(cfg, parts, blocks, contexts=12, seed=5, ranges=True)
    entry, stored = ranged[cfg.exact_block], ranged[cfg.exact_block].as_dict()
    # without the range the stored form is as it was; with it, one more key
    assert "range" not in plain[cfg.exact_block].as_dict()
    assert {k: v for k, v in stored.items() if k != "range"} == plain[cfg.exact_block].as_dict()
    r = stored["range"]
    assert set(r) == {"without", "with", "worst_case_guard"}
    assert set(r["worst_case_guard"]) == {"kept_share", "kept_per_size", "worst", "maximum_entropy"}
    # minimised: the worst end is at least the maximum-entropy value, the best at most
    assert r["with"]["worst"]["metric"] >= stored["metric"] - 1e-8 >= r["with"]["best"]["metric"] - 2e-8
    assert r["without"]["worst"]["metric"] >= stored["baseline"] - 1e-8
    # the promise, per context: the guarded worst case is never worse than the baseline's
    context = parts.sampler.sample(12, torch.Generator().manual_seed(5))
    with torch.no_grad():
        x, x0 = parts.generator(context), parts.objective.baseline_intervention(context)
    ranges = context_ranges(parts.objective, context, x, x0, parts.concept, parts.eps)
    assert bool((ranges.guarded_worst(parts.objective) <= ranges.baseline_worst).all())
    assert entry.range.guarded_worst.metric <= entry.range.without_worst.metric
    for size, summary in r["worst_case_guard"]["worst"]["per_size"].items():
        assert summary["metric"] <= r["without"]["worst"]["per_size"][size]["metric"] + 1e-12
    table = range_table(json.loads(json.dumps({cfg.exact_block: stored})))
    assert table is not None and f"| {cfg.exact_block} | all | 12 |" in table
    assert range_table({cfg.exact_block: plain[cfg.exact_block].as_dict()}) is None


def test_evaluation_refuses_a_range_for_an_objective_that_is_not_linear_before_solving():
    cfg = resolve_train_config(TINY)
    with pytest.raises(RangeError, match="not linear in the joint"):
        evaluate_generator(cfg, build_components(cfg), [cfg.exact_block], contexts=4, seed=0, ranges=True)


def _ranged_evaluation(rank: int, barrier, out: str) -> None:
    """Evaluate with ranges in chunks of 4 (8 contexts: one chunk per rank of two); rank 0 writes the result."""
    cfg = resolve_train_config(TINY)
    torch.manual_seed(0)  # the generator's initial weights, alike on every process
    parts = replace(build_components(cfg), objective=LinearToy())
    result = evaluate_generator(cfg, parts, [cfg.exact_block], contexts=8, seed=5, chunk=4, ranges=True)
    if rank == 0:
        stored = result[cfg.exact_block].as_dict()
        Path(out).write_text(json.dumps({"range": stored["range"], "world_size": stored["world_size"]}))


def test_sharded_ranges_are_the_single_process_ranges(tmp_path):
    import distributed_helpers

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        distributed_helpers.run_groups((1, _ranged_evaluation, (str(one),)), (2, _ranged_evaluation, (str(two),)))
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert a["range"] == b["range"]  # bit for bit
