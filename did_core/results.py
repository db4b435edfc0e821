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
from did_core.tasks import DesignObjective

__all__ = ["Summary", "PolishedResult", "BlockResult", "summarise", "format_eval", "convergence_note"]


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


@dataclass
class BlockResult:
    """What one block says of a generator on the held-out contexts: the interventions as they are
    (``unguarded``), guarded by the exact block, the task's bound (if it knows one), polished (if asked), the
    run's settings that frame the numbers, and the solves' convergence per phase (``evaluation``, ``polish``)."""

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
