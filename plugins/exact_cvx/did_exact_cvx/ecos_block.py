"""The exact block: each game's eps-ME (C)CE solved by cvxpy with ECOS (docs/mathematics.md, section 4.2).

Forward: maximise ``sum entr(sigma)`` over the real joint actions subject to the
real constraint rows ``D sigma <= eps`` and ``sum sigma = 1``, one game at a
time. The constraint multipliers are the dual ``alpha``. If ECOS fails, another
installed conic solver is tried with a warning; a game no solver solves raises an
error naming its batch index. Backward: implicit differentiation
(``did_core.implicit``), shared with every exact solver.

Example::

    >>> import torch
    >>> from did_core.games import classic_game
    >>> from did_exact_cvx import EcosBlock
    >>> eq = EcosBlock()(classic_game("chicken").unsqueeze(0), concept="ce", eps=0.05)
    >>> eq.sigma.shape
    torch.Size([1, 2, 2])
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import torch
from torch import Tensor

from did_core.blocks import Capabilities, DualSolverBlock, SolverOutput
from did_core.equilibria import Constraints

__all__ = ["EcosBlock", "solve_game", "SolverFailure"]

FALLBACK_SOLVERS: tuple[str, ...] = ("CLARABEL", "SCS")


class SolverFailure(RuntimeError):
    """No conic solver could solve a game."""


def solve_game(gains: np.ndarray, eps: np.ndarray, solvers: tuple[str, ...] = ("ECOS",) + FALLBACK_SOLVERS,
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """Solve one game's eps-ME program on its real rows and joint actions.

    **Arguments:** ``gains [K, J]``, ``eps [K]``.
    **Returns:** ``sigma [J]`` (a distribution), ``alpha [K] >= 0``, the solver used.
    """
    sigma = cp.Variable(gains.shape[1])
    rows = [gains @ sigma <= eps] if gains.shape[0] else []
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), rows + [cp.sum(sigma) == 1])
    errors = []
    for i, solver in enumerate(s for s in solvers if s in cp.installed_solvers()):
        options = {"max_iters": 500, "abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10} if solver == "ECOS" else {}
        try:
            problem.solve(solver=solver, **options)
        except cp.error.SolverError as exc:
            errors.append(f"{solver}: {exc}")
            continue
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and sigma.value is not None:
            if i > 0 or problem.status == cp.OPTIMAL_INACCURATE:
                warnings.warn(f"eps-ME solve: {solver} returned {problem.status} after {'; '.join(errors) or 'none'}",
                              RuntimeWarning, stacklevel=3)
            value = np.clip(sigma.value, 0.0, None)
            alpha = np.clip(rows[0].dual_value, 0.0, None) if rows else np.zeros(0)
            return value / value.sum(), alpha, solver
        errors.append(f"{solver}: status {problem.status}")
    raise SolverFailure("; ".join(errors) or "no conic solver installed")


class EcosBlock(DualSolverBlock):
    """Exact eps-ME (C)CE by cvxpy + ECOS per game, differentiable by implicit differentiation."""

    name = "exact_cvx"
    capabilities = Capabilities(exact=True, devices=("cpu",))

    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        batch = cons.rows.shape[0]
        gains = cons.gains.detach().cpu().double().numpy()
        eps_rows = cons.eps.detach().cpu().double().numpy()
        rows = cons.rows.cpu().numpy()
        joint = cons.joint.cpu().numpy()
        sigma = np.zeros(joint.shape)
        alpha = np.zeros(rows.shape)
        for b in range(batch):
            try:
                s, a, _ = solve_game(gains[b][rows[b]][:, joint[b]], eps_rows[b][rows[b]])
            except SolverFailure as exc:
                raise SolverFailure(f"game {b} of the batch could not be solved: {exc}") from None
            sigma[b, joint[b]] = s
            alpha[b, rows[b]] = a
        to = {"dtype": torch.float64, "device": cons.rows.device}
        return SolverOutput(torch.as_tensor(sigma, **to), torch.as_tensor(alpha, **to),
                            {"converged": torch.ones(batch, dtype=torch.bool, device=cons.rows.device)})
