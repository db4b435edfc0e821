"""The inverse task on the 2-simplex: games where one player has 3 actions and the other 1.

The joint then lives on a triangle, so the target, the generated game's whole
eps-(C)CE set (a polygon: the constraints are half-planes) and its ME joint can
be drawn together. The figure shows where the generator puts the equilibrium
set relative to the target.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.concepts import get_concept
from did_core.plots import require_matplotlib, simplex_axes, to_simplex
from did_core.tasks import Context

__all__ = ["simplex_contexts", "simplex_figure"]


def simplex_contexts(sampler: Any, count: int, seed: int = 0) -> Context:
    """``count`` contexts of the sampler's shape whose real game is 3 x 1 (2 players)."""
    context = sampler.sample(count, torch.Generator().manual_seed(seed))
    mask = torch.zeros_like(context["mask"])
    if mask.shape[1] != 2 or mask.shape[2] < 3:
        raise ValueError("the simplex plot needs 2 players and at least 3 actions (max_actions >= 3)")
    mask[:, 0, :3] = True
    mask[:, 1, :1] = True
    real = torch.zeros_like(context["target"], dtype=torch.bool)
    real[:, :3, 0] = True
    weights = -torch.log(torch.rand(context["target"].shape, generator=torch.Generator().manual_seed(seed + 1)))
    weights = weights * real
    return {"target": weights / weights.flatten(1).sum(1).view(-1, 1, 1),
            "noise": context["noise"] * real, "mask": mask}


def simplex_figure(sampler: Any, generator: torch.nn.Module, objective: Any,
                   solve: Callable[[Context, Tensor], Equilibrium], path: Path, count: int = 6) -> Path:
    """Draw ``count`` panels: target (star), equilibrium set (shaded), ME joint (dot)."""
    plt = require_matplotlib()
    context = simplex_contexts(sampler, count)
    with torch.no_grad():
        x = generator(context)
        eq = solve(context, x)
        games, mask = objective.induce(context, x)
        games = games.double()
    steps = 240
    grid = np.array([(i, j, steps - i - j) for i in range(steps + 1) for j in range(steps + 1 - i)],
                    dtype=float) / steps
    fig, axes = plt.subplots(1, count, figsize=(2.6 * count, 2.6))
    for b, ax in enumerate(np.atleast_1d(axes)):
        op = get_concept(eq.concept).operator(games[b:b + 1], mask[b:b + 1])
        real = op.real[0]
        rows = op.dense()[0][real].reshape(-1, *games.shape[2:])[:, :3, 0].numpy()
        # The tolerance the block used: its owner's eps_p (0 for rows no player owns).
        eps = (eq.eps[b].double()[op.owners.clamp_min(0)] * (op.owners >= 0))[real].numpy()
        feasible = grid[(grid @ rows.T <= eps[None, :] + 1e-12).all(axis=1)]
        simplex_axes(ax, ("a1", "a2", "a3"))
        if len(feasible):
            ax.scatter(*to_simplex(feasible).T, s=2, c="tab:blue", alpha=0.3, label="eps-equilibria")
        target = context["target"][b, :3, 0].double().numpy()
        joint = eq.sigma[b, :3, 0].double().numpy()
        ax.scatter(*to_simplex(target), marker="*", s=120, c="tab:red", label="target")
        ax.scatter(*to_simplex(joint), s=40, c="k", label="ME joint")
        kl = float(np.sum(target * np.log(np.clip(target, 1e-30, None) / np.clip(joint, 1e-30, None))))
        ax.set_title(f"KL {kl:.3f}", fontsize=9)
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
