"""Independent eps-maximum-entropy solvers to check blocks and concepts against; they share no code with the blocks
or with ``did_core.equilibria``.

* :func:`reference_joint` solves any concept: the concept's own dense rows (what a block under test solves), the
  tolerances computed here from the payoffs (:func:`reference_scale`), and the program's dual minimised by scipy's
  L-BFGS-B, accepted only with a certificate of optimality (:func:`max_entropy`).
* :func:`reference_solve` solves CE and CCE from their definitions (docs/mathematics.md, section 2): rows written one
  at a time with plain loops (:func:`reference_rows`), the primal solved by Clarabel, an interior-point solver other
  than the exact block's ECOS. It needs cvxpy, which did-core does not depend on: ``pip install
  'did-core[testing]'``.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from did_core.concepts import Concept
from did_core.equilibria import Epsilon

__all__ = ["CERTIFIED", "max_entropy", "reference_joint", "reference_rows", "reference_scale", "reference_solve"]

#: The largest KKT residual of the dual (rows scaled to max |D_kj| = 1) :func:`max_entropy` accepts. Measured on
#: random CE and CCE games up to 4x4 and 2x3x2, L-BFGS-B ends below 6e-9, and its joints are then within 6e-9 of
#: those of a Newton solver that stops at a residual of 1e-10.
CERTIFIED = 1e-8


def max_entropy(rows: np.ndarray, tolerances: np.ndarray) -> np.ndarray:
    """The joint ``sigma [J]`` of most entropy with ``rows @ sigma <= tolerances`` (``rows [K, J]``, ``tolerances
    [K]``: real rows and joint actions only).

    By the dual ``min_{a >= 0} log sum_j exp(-(rows^T a)_j) + a . tolerances`` (docs/mathematics.md, section 3.3),
    rows scaled to max |D_kj| = 1, minimised by L-BFGS-B; ``sigma = softmax(-rows^T a)``. Raises ``RuntimeError``
    unless the projected gradient at ``a`` (primal feasibility and complementary slackness) is within
    :data:`CERTIFIED`.
    """
    k, j = rows.shape
    if k == 0:
        return np.full(j, 1.0 / j)
    scale = float(np.abs(rows).max()) or 1.0
    d, e = rows / scale, tolerances / scale

    def joint(a: np.ndarray) -> np.ndarray:
        logits = -d.T @ a
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def dual(a: np.ndarray) -> tuple[float, np.ndarray]:
        logits = -d.T @ a
        top = logits.max()
        return float(top + np.log(np.exp(logits - top).sum()) + a @ e), e - d @ joint(a)

    a = minimize(dual, np.zeros(k), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * k,
                 options={"maxiter": 50_000, "maxcor": 50, "ftol": 0.0, "gtol": 1e-14}).x
    residual = float(np.abs(a - np.maximum(0.0, a - dual(a)[1])).max())
    if not residual <= CERTIFIED:
        raise RuntimeError(f"the reference solver stopped at a KKT residual of {residual:.1e} (> {CERTIFIED:g}) "
                           f"on a game with {k} rows and {j} joint actions")
    return joint(a)


def reference_scale(game: np.ndarray) -> np.ndarray:
    """``s_p`` of one game ``[N, A_1..A_N]``: RMS of ``G[p]`` after removing, per ``a_{-p}``, the mean over ``p``'s
    own actions; ``[N]``."""
    out = []
    for p in range(game.shape[0]):
        g = game[p]
        centred = g - g.mean(axis=p, keepdims=True)
        out.append(np.sqrt(np.mean(centred**2)))
    return np.array(out)


def reference_joint(games: Tensor, mask: Tensor, concept: Concept, eps: Epsilon) -> Tensor:
    """The eps-ME joints ``[B, A_1..A_N]`` of ``games [B, N, A_1..A_N]`` (``mask [B, N, A_max]``, real actions first)
    under ``concept``: per game, :func:`max_entropy` of the concept's dense rows on the real joint actions, each row
    with its owner's tolerance (``eps`` times :func:`reference_scale` of the real game when relative); zero on
    padded joint actions."""
    games = games.detach().double()
    operator = concept.operator(games, mask)
    rows, real, joint = operator.dense().detach().numpy(), operator.real.numpy(), operator.joint.numpy()
    owners = operator.owners.numpy()
    out = np.zeros((len(games), operator.joints))
    for b, game in enumerate(games.numpy()):
        counts = mask[b].sum(dim=1).tolist()
        real_game = game[(slice(None), *(slice(0, n) for n in counts))]
        per_player = eps.value * reference_scale(real_game) if eps.relative else np.full(len(counts), eps.value)
        tolerances = np.where(owners >= 0, per_player[np.maximum(owners, 0)], 0.0)[real[b]]
        out[b, joint[b]] = max_entropy(rows[b][real[b]][:, joint[b]], tolerances)
    return torch.as_tensor(out).reshape(len(games), *operator.sizes)


def reference_rows(game: np.ndarray, concept: str) -> tuple[list[list[float]], list[int]]:
    """The CE (``concept="ce"``) or CCE (``"cce"``) rows of one game ``[N, A_1..A_N]`` over joint actions in C
    order, and the player owning each row."""
    n = game.shape[0]
    sizes = game.shape[1:]
    joints = list(itertools.product(*[range(s) for s in sizes]))
    rows, owners = [], []
    for p in range(n):
        if concept == "cce":
            for d in range(sizes[p]):
                row = []
                for a in joints:
                    dev = list(a)
                    dev[p] = d
                    row.append(game[(p, *dev)] - game[(p, *a)])
                rows.append(row)
                owners.append(p)
        else:
            for r in range(sizes[p]):
                for d in range(sizes[p]):
                    if r == d:
                        continue
                    row = []
                    for a in joints:
                        if a[p] != r:
                            row.append(0.0)
                            continue
                        dev = list(a)
                        dev[p] = d
                        row.append(game[(p, *dev)] - game[(p, *a)])
                    rows.append(row)
                    owners.append(p)
    return rows, owners


def reference_solve(game: np.ndarray, concept: str, eps: float, relative: bool = True) -> np.ndarray:
    """The eps-ME CE or CCE of one game ``[N, A_1..A_N]`` as an array ``[A_1..A_N]``, by Clarabel.

    Needs cvxpy (``pip install 'did-core[testing]'``); without it, an ``ImportError`` saying so.
    """
    try:
        import cvxpy as cp  # optional: the extra did-core[testing]
    except ImportError as exc:
        raise ImportError("did_core.testing.reference_solve needs cvxpy: pip install 'did-core[testing]'") from exc
    game = np.asarray(game, dtype=float)
    rows, owners = reference_rows(game, concept)
    eps_p = eps * reference_scale(game) if relative else np.full(game.shape[0], eps)
    D = np.array(rows) if rows else np.zeros((0, int(np.prod(game.shape[1:]))))
    e = np.array([eps_p[o] for o in owners])

    sigma = cp.Variable(D.shape[1])
    rows = [D @ sigma <= e] if len(D) else []
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), rows + [cp.sum(sigma) == 1])
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL, problem.status
    x = np.clip(sigma.value, 0, None)
    return (x / x.sum()).reshape(game.shape[1:])
