"""Held-out evaluation of a mechanism generator (SPEC section 6).

On a fixed seeded set of contexts, the generator's intervention and the naive
baseline intervention are both solved with each named block; the task's metric,
its baseline and the share of contexts improved are reported per block and per
game size. The same generated intervention is scored under every block, so the
learned-block and exact-block numbers are directly comparable.
"""

from __future__ import annotations

from typing import Any

import torch

from did_core.config import TrainConfig
from did_core.plugins import create
from did_core.tasks import index_context

__all__ = ["evaluate_generator", "format_eval"]


def evaluate_generator(cfg: TrainConfig, parts: Any, blocks: list[str], contexts: int, seed: int,
                       chunk: int = 64) -> dict[str, Any]:
    """Score ``parts.generator`` on ``contexts`` held-out contexts drawn with ``seed``.

    **Returns:** ``{block name: {metric, baseline, improved_share, contexts, metric_name,
    concept, eps, per_size: {size: {metric, baseline, improved_share, contexts}}}}``.
    """
    from did_core.train import context_to, solve_induced

    objective, generator = parts.objective, parts.generator
    held_out = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    sizes = parts.sampler.size_of(held_out)
    generator.eval()
    result: dict[str, Any] = {}
    for name in blocks:
        block = parts.block if name == cfg.block else create("blocks", name)
        values, baselines = [], []
        for start in range(0, contexts, chunk):
            context = context_to(index_context(held_out, slice(start, start + chunk)), parts.device)
            with torch.no_grad():
                x = generator(context)
                x0 = objective.baseline_intervention(context)
                values.append(objective.value(context, x, solve_induced(parts, block, context, x, cfg.concept)).cpu())
                baselines.append(
                    objective.value(context, x0, solve_induced(parts, block, context, x0, cfg.concept)).cpu())
        result[name] = _summary(objective, torch.cat(values), torch.cat(baselines), sizes)
        result[name].update(metric_name=objective.metric_name, concept=cfg.concept, eps=cfg.eps,
                            absolute_eps=cfg.absolute_eps, seed=seed)
    return result


def _summary(objective: Any, value: torch.Tensor, baseline: torch.Tensor, sizes: torch.Tensor) -> dict[str, Any]:
    def stats(v: torch.Tensor, b: torch.Tensor) -> dict[str, Any]:
        metric = v - b if objective.report_change else v
        base = torch.zeros_like(b) if objective.report_change else b
        return {
            "metric": float(metric.mean()),
            "baseline": float(base.mean()),
            "improved_share": float(objective.improved(v, b).double().mean()),
            "contexts": int(v.numel()),
        }

    out = stats(value, baseline)
    out["per_size"] = {str(int(s)): stats(value[sizes == s], baseline[sizes == s]) for s in torch.unique(sizes)}
    return out


def format_eval(result: dict[str, Any]) -> str:
    """A small Markdown table of an evaluation: one row per block."""
    lines = ["| block | metric | value | baseline | improved | contexts |", "|---|---|---|---|---|---|"]
    for name, r in result.items():
        lines.append(f"| {name} | {r['metric_name']} | {r['metric']:.4f} | {r['baseline']:.4f} | "
                     f"{100 * r['improved_share']:.0f}% | {r['contexts']} |")
    return "\n".join(lines)
