"""Exact evaluation of an affine maximizer on a setting: the mean objective over sampled type profiles.

The mechanism runs with the exact policy (``alpha = 0``, ties to the lowest action index); profiles are drawn
from a seeded generator in chunks, so the answer depends only on (setting, mechanism, profiles, seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from did_core.affine_maximizer import AffineMaximizer, run_affine_maximizer
from did_dynamic.settings import Setting

__all__ = ["Measured", "evaluate", "objective_of", "CHUNK"]

#: Type profiles solved at once (memory ~ CHUNK * (N + 1) * S * A doubles, a few hundred MB at most here).
CHUNK = 5_000


@dataclass(frozen=True)
class Measured:
    """A mean objective with its standard error over ``samples`` profiles."""

    mean: float
    stderr: float
    samples: int


def objective_of(setting: Setting, mechanism: AffineMaximizer, types: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
    """The objective ``[B]`` of ``mechanism`` for type profiles ``types`` (see :meth:`Setting.sample_types`)."""
    outcome = run_affine_maximizer(setting.mdp, setting.rewards(types), setting.counterfactual_rewards(types),
                                   mechanism.weights, mechanism.boosts, alpha)
    return setting.objective(outcome, types)


@torch.no_grad()
def evaluate(setting: Setting, mechanism: AffineMaximizer, profiles: int, seed: int) -> Measured:
    """The exact mean objective over ``profiles`` type profiles drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    total = square = 0.0
    done = 0
    while done < profiles:
        count = min(CHUNK, profiles - done)
        values = objective_of(setting, mechanism, setting.sample_types(count, generator))
        total += float(values.sum())
        square += float((values * values).sum())
        done += count
    mean = total / profiles
    variance = max(square / profiles - mean * mean, 0.0) * profiles / max(profiles - 1, 1)
    return Measured(mean, math.sqrt(variance / profiles), profiles)
