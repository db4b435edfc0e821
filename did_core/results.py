"""The typed results of a held-out evaluation, and their stored form (``report.json``'s ``blocks``).

:func:`did_core.evaluate.evaluate_generator` returns ``{block name: BlockResult}``;
``as_dict()`` gives the JSON that reports, model cards and the README table read
(its keys and their order are the stored format: do not rename them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from did_core.convergence import SolveTally
from did_core.equilibrium_range import ContextRanges
from did_core.tasks import DesignObjective

__all__ = ["Summary", "PolishedResult", "RangeResult", "BlockResult", "summarise", "summarise_range", "format_eval",
           "range_table", "convergence_note"]


@dataclass(frozen=True)
class Summary:
    """One column of a report over a set of contexts: the mean ``metric`` (the value, or its change from the
    baseline for an objective that reports a change) and the ``baseline``'s, the absolute mean ``value`` and
    ``baseline_value``, the share of contexts improved over the baseline, the count, and the same per size."""

    metric: float
    baseline: float
    value: float
    baseline_value: float
    improved_share: float
    contexts: int
    per_size: dict[str, "Summary"] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stored form (``per_size`` only where there is one)."""
        out: dict[str, Any] = {"metric": self.metric, "baseline": self.baseline, "value": self.value,
                               "baseline_value": self.baseline_value, "improved_share": self.improved_share,
                               "contexts": self.contexts}
        if self.per_size:
            out["per_size"] = {size: s.as_dict() for size, s in self.per_size.items()}
        return out


def _stats(objective: DesignObjective, value: Tensor, baseline: Tensor) -> Summary:
    metric = value - baseline if objective.report_change else value
    base = torch.zeros_like(baseline) if objective.report_change else baseline
    return Summary(float(metric.mean()), float(base.mean()), float(value.mean()), float(baseline.mean()),
                   float(objective.improved(value, baseline).double().mean()), int(value.numel()))


def summarise(objective: DesignObjective, value: Tensor, baseline: Tensor, sizes: Tensor) -> Summary:
    """The :class:`Summary` of values ``[N]`` against baseline values ``[N]``, overall and per size label
    ``sizes [N]``."""
    per_size = {str(int(s)): _stats(objective, value[sizes == s], baseline[sizes == s]) for s in torch.unique(sizes)}
    overall = _stats(objective, value, baseline)
    return Summary(**{**overall.__dict__, "per_size": per_size})


@dataclass(frozen=True)
class PolishedResult:
    """The polished interventions (Nelder-Mead, ``budget`` evaluations per context) scored under the block that
    polished them and under the exact block."""

    budget: int
    under_block: Summary
    under_exact: Summary

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"budget": self.budget, "under_block": self.under_block.as_dict(),
                "under_exact": self.under_exact.as_dict()}


@dataclass(frozen=True)
class RangeResult:
    """The designer's value over the whole eps-equilibrium set of each held-out context (docs/mathematics.md,
    section 8). Every column is a :class:`Summary` against the baseline intervention's value at this block's
    maximum-entropy equilibrium, the metric's own reference (so a change metric's ends are changes from it):

    * ``without_worst`` / ``without_best``: the baseline intervention's worst and best end;
    * ``with_worst`` / ``with_best``: the generator's;
    * the worst-case guard, the generator's intervention where its worst case beats the baseline's worst case,
      else the baseline (kept on ``kept_share`` of the contexts, ``kept_per_size`` per size): its worst case
      ``guarded_worst``, never worse than ``without_worst`` context by context, and its value at this block's
      maximum-entropy equilibrium ``guarded``.
    """

    without_worst: Summary
    without_best: Summary
    with_worst: Summary
    with_best: Summary
    guarded_worst: Summary
    guarded: Summary
    kept_share: float
    kept_per_size: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stored form (``report.json``'s ``blocks.NAME.range``)."""
        return {"without": {"worst": self.without_worst.as_dict(), "best": self.without_best.as_dict()},
                "with": {"worst": self.with_worst.as_dict(), "best": self.with_best.as_dict()},
                "worst_case_guard": {"kept_share": self.kept_share, "kept_per_size": dict(self.kept_per_size),
                                     "worst": self.guarded_worst.as_dict(),
                                     "maximum_entropy": self.guarded.as_dict()}}


def summarise_range(objective: DesignObjective, ranges: ContextRanges, value: Tensor, baseline: Tensor,
                    sizes: Tensor) -> RangeResult:
    """The :class:`RangeResult` of per-context ``ranges`` (absolute ends, ``[N]`` each), with the generator's and
    the baseline's values ``value``, ``baseline [N]`` at one block's maximum-entropy equilibria and size labels
    ``sizes [N]``."""
    keep = ranges.keep(objective)
    kept = {str(int(s)): float(keep[sizes == s].double().mean()) for s in torch.unique(sizes)}

    def column(ends: Tensor) -> Summary:
        return summarise(objective, ends, baseline, sizes)

    return RangeResult(column(ranges.baseline_worst), column(ranges.baseline_best), column(ranges.worst),
                       column(ranges.best), column(ranges.guarded_worst(objective)),
                       column(torch.where(keep, value, baseline)), float(keep.double().mean()), kept)


@dataclass
class BlockResult:
    """What one block says of a generator on the held-out contexts: the interventions as they are
    (``unguarded``), guarded by the exact block, the task's bound (if it knows one), polished (if asked), the
    run's settings that frame the numbers, the value's range over the equilibrium set (if asked), and the solves'
    convergence per phase (``evaluation``, ``polish``)."""

    unguarded: Summary
    guarded: Summary
    metric_name: str
    report_change: bool
    size_axis: str
    concept: str
    eps: float
    absolute_eps: bool
    seed: int
    guard_block: str
    world_size: int
    bound: Summary | None = None
    polished: PolishedResult | None = None
    convergence: dict[str, SolveTally] = field(default_factory=dict)
    range: RangeResult | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stored form: the unguarded summary's keys at the top, then the rest."""
        out: dict[str, Any] = {**self.unguarded.as_dict(), "guarded": self.guarded.as_dict(),
                               "metric_name": self.metric_name, "report_change": self.report_change,
                               "size_axis": self.size_axis, "concept": self.concept, "eps": self.eps,
                               "absolute_eps": self.absolute_eps, "seed": self.seed, "guard_block": self.guard_block,
                               "world_size": self.world_size}
        if self.bound is not None:
            out["bound"] = self.bound.as_dict()
        if self.polished is not None:
            out["polished"] = self.polished.as_dict()
        if self.range is not None:
            out["range"] = self.range.as_dict()
        out["convergence"] = {phase: tally.as_dict() for phase, tally in self.convergence.items()}
        return out


def format_eval(result: Mapping[str, BlockResult]) -> str:
    """A small Markdown table of an evaluation: one row per block."""
    lines = ["| block | metric | value | baseline | improved | guarded | contexts |", "|---|---|---|---|---|---|---|"]
    for name, r in result.items():
        s = r.unguarded
        absolute = f" (absolute {s.baseline_value:.4f})" if r.report_change else ""
        lines.append(f"| {name} | {r.metric_name} | {s.metric:.4f} | {s.baseline:.4f}{absolute} | "
                     f"{100 * s.improved_share:.0f}% | {r.guarded.metric:.4f} | {s.contexts} |")
    return "\n".join(lines)


def _interval(worst: Mapping[str, Any] | None, best: Mapping[str, Any] | None) -> str:
    return "-" if worst is None or best is None else f"[{worst['metric']:.4f}, {best['metric']:.4f}]"


def _range_row(name: str, label: str, me: Mapping[str, Any], r: Mapping[str, Any], kept: float | None) -> str:
    """One row of :func:`range_table`: ``me`` the block's summary, ``r`` its range's (both for one size group)."""
    guard = r["worst_case_guard"]
    kept_cell = "-" if kept is None else f"{100 * kept:.0f}%"
    return (f"| {name} | {label} | {me['contexts']} | {_interval(r['without']['worst'], r['without']['best'])} | "
            f"{_interval(r['with']['worst'], r['with']['best'])} | {me['metric']:.4f} | {kept_cell} | "
            f"{guard['worst']['metric']:.4f} | {guard['maximum_entropy']['metric']:.4f} |")


def _range_of_size(r: Mapping[str, Any], size: str) -> dict[str, Any]:
    """The stored range ``r`` cut to one size group (its summaries' ``per_size[size]``)."""
    def at(summary: Mapping[str, Any]) -> Any:
        return summary.get("per_size", {}).get(size)

    guard = r["worst_case_guard"]
    return {"without": {k: at(v) for k, v in r["without"].items()}, "with": {k: at(v) for k, v in r["with"].items()},
            "worst_case_guard": {"worst": at(guard["worst"]), "maximum_entropy": at(guard["maximum_entropy"])}}


def range_table(blocks: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The Markdown table of the ranges in a stored report's ``blocks`` (``None`` when none has one): per block,
    overall and per size, the mean worst and best end of the baseline and of the generator, the generator at
    the maximum-entropy equilibrium, and the worst-case guard."""
    ranged = {name: entry for name, entry in blocks.items() if "range" in entry}
    if not ranged:
        return None
    first = next(iter(ranged.values()))
    axis = first.get("size_axis", "size")
    lines = [f"Over the eps-equilibrium set ({first['metric_name']}; docs/mathematics.md, section 8): the mean "
             f"worst and best end per context, and the worst-case guard (the generator where its worst case beats "
             f"the baseline's):", "",
             f"| block | {axis} | contexts | baseline [worst, best] | generator [worst, best] | generator (ME) | "
             f"kept by the worst-case guard | guarded worst | guarded (ME) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in ranged.items():
        r = entry["range"]
        lines.append(_range_row(name, "all", entry, r, r["worst_case_guard"]["kept_share"]))
        for size, me in entry.get("per_size", {}).items():
            lines.append(_range_row(name, size, me, _range_of_size(r, size),
                                    r["worst_case_guard"]["kept_per_size"].get(size)))
    return "\n".join(lines)


def convergence_note(result: Mapping[str, BlockResult]) -> str | None:
    """One ``did: note:`` line on every unconverged solve of an evaluation, or ``None`` when there was none."""
    counts, worst = [], 0.0
    for block, entry in result.items():
        phases = [f"{t.unconverged} of {t.solves} in the {phase}" for phase, t in entry.convergence.items()
                  if t.unconverged]
        if phases:
            counts.append(f"{block} {' and '.join(phases)}")
            worst = max([worst] + [t.worst_violation for t in entry.convergence.values()])
    if not counts:
        return None
    return (f"did: note: some solves did not converge: {'; '.join(counts)} (largest violation {worst:.1e}); "
            f"their answers were scored as the block returned them")
