"""What the samplers of both tasks share: a check of their action-count and payoff ranges."""

from __future__ import annotations

from did_core.tasks import Options

__all__ = ["check_ranges"]


def check_ranges(sampler: str, options: Options) -> None:
    """Refuse ``min_actions > max_actions`` or ``low >= high`` with one line naming ``sampler``."""
    o = options
    if o.min_actions > o.max_actions or o.low >= o.high:
        raise ValueError(f"invalid options for {sampler}: need min_actions <= max_actions and "
                         f"low < high, got {o.min_actions}, {o.max_actions}, {o.low}, {o.high}")
