"""The inverse task on the 2-simplex: 3 x 2 games, drawn as player 1's marginal.

Player 1's marginal of a joint of a 3 x 2 game lives on a triangle, so the
target, the generated game's eps-equilibrium set (projected: a marginal is in it
when some joint with that marginal satisfies every constraint, one small linear
program per grid point) and its ME joint can be drawn together. 3 x 2 games are
inside every profile's size range (2 to 4 actions per player for the quick one),
so the panels show the generator on games it was trained for; each panel's KL is
that of the whole joint, and the held-out mean mixes every size the profile draws.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.plots import require_matplotlib, simplex_axes, to_simplex
from did_core.tasks import Context

__all__ = ["simplex_contexts", "simplex_figure"]


def simplex_contexts(sampler: Any, count: int, seed: int = 0) -> Context:
    """``count`` contexts of the sampler's shape whose real game is 3 x 2 (2 players), random targets."""
    context = sampler.sample(count, torch.Generator().manual_seed(seed))
    mask = torch.zeros_like(context["mask"])
    if mask.shape[1] != 2 or mask.shape[2] < 3:
        raise ValueError("the simplex plot needs 2 players and at least 3 actions (max_actions >= 3)")
    mask[:, 0, :3] = True
    mask[:, 1, :2] = True
    real = torch.zeros_like(context["target"], dtype=torch.bool)
    real[:, :3, :2] = True
    weights = -torch.log(torch.rand(context["target"].shape, generator=torch.Generator().manual_seed(seed + 1)))
    weights = weights * real
    return {"target": weights / weights.flatten(1).sum(1).view(-1, 1, 1),
            "noise": context["noise"] * real, "mask": mask}


def _projected_set(rows: np.ndarray, eps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The grid points (player 1's marginals ``[P, 3]``) of some joint ``[3, 2]`` meeting ``rows . joint <= eps``."""
    from scipy.optimize import linprog

    flat = rows.reshape(len(rows), -1)
    marginal = np.kron(np.eye(3), np.ones((1, 2)))  # [3, 6]: P(a1) = sum over a2 of the joint
    keep = []
    for point in grid:
        found = linprog(np.zeros(6), A_ub=flat, b_ub=eps + 1e-12, A_eq=marginal, b_eq=point, bounds=(0, None),
                        method="highs")
        keep.append(found.status == 0)
    return grid[np.array(keep, dtype=bool)]


def simplex_figure(sampler: Any, generator: torch.nn.Module, objective: Any,
                   solve: Callable[[Context, Tensor], Equilibrium], path: Path, count: int = 6) -> Path:
    """Draw ``count`` panels of 3 x 2 games: player 1's marginal of the target (star), of the
    eps-equilibrium set (shaded) and of the ME joint (dot), with the whole joint's KL."""
    plt = require_matplotlib()
    context = simplex_contexts(sampler, count)
    with torch.no_grad():
        x = generator(context)
        eq = solve(context, x)
        games, mask = objective.induce(context, x)
        games = games.double()
    steps = 24  # 325 marginals, one small LP each
    grid = np.array([(i, j, steps - i - j) for i in range(steps + 1) for j in range(steps + 1 - i)],
                    dtype=float) / steps
    fig, axes = plt.subplots(1, count, figsize=(2.4 * count, 3.0), layout="constrained")
    for b, ax in enumerate(np.atleast_1d(axes)):
        op = eq.concept.operator(games[b:b + 1], mask[b:b + 1])
        real = op.real[0]
        rows = op.dense()[0][real].reshape(-1, *games.shape[2:])[:, :3, :2].numpy()
        # The tolerance the block used: its owner's eps_p (0 for rows no player owns).
        eps = (eq.eps[b].double()[op.owners.clamp_min(0)] * (op.owners >= 0))[real].numpy()
        feasible = _projected_set(rows, eps, grid)
        simplex_axes(ax, ("a1=1", "a1=2", "a1=3"))
        if len(feasible):
            ax.scatter(*to_simplex(feasible).T, s=6, c="tab:blue", alpha=0.3, label="eps-equilibria")
        target = context["target"][b, :3, :2].double().numpy()
        joint = eq.sigma[b, :3, :2].double().numpy()
        ax.scatter(*to_simplex(target.sum(axis=1)), marker="*", s=120, c="tab:red", label="target")
        ax.scatter(*to_simplex(joint.sum(axis=1)), s=40, c="k", label="ME joint")
        kl = float(np.sum(target * np.log(np.clip(target, 1e-30, None) / np.clip(joint, 1e-30, None))))
        ax.set_title(f"KL {kl:.3f}", fontsize=9, pad=16)
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle("3 x 2 games: player 1's marginal (KL of the whole joint)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
