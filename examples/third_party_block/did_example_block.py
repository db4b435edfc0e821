"""A third-party exact equilibrium block for DID: the eps-ME dual solved by scipy's L-BFGS-B, one game at a time.

The dual is smooth and convex on ``alpha >= 0`` (docs/mathematics.md, section 3.3);
its minimiser defines the eps-maximum-entropy joint. Installed (``pip install -e
examples/third_party_block``), the entry point of the group ``did`` registers the block
``scipy_dual``: ``did solve GAME --block scipy_dual``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from did_core.blocks import Capabilities, DualSolverBlock, NonConvergenceWarning, SolverOutput
from did_core.equilibria import Constraints
from did_core.hookspecs import hookimpl
from did_core.registry import Registry


class ScipyDualBlock(DualSolverBlock):
    """Exact eps-ME equilibria of any concept by L-BFGS-B on the dual, one game at a time."""

    name = "scipy_dual"
    # Exact, CPU only, every registered concept (concepts=None: it only uses the constraint rows). It is slower
    # than a batched solver, so a negative preference keeps any other installed exact block the default.
    capabilities = Capabilities(exact=True, devices=("cpu",), preference=-10)

    def __init__(self, tol: float = 1e-8) -> None:  # options come through the factory: --block-options '{tol: ..}'
        if tol <= 0:
            raise ValueError(f"tol must be > 0, got {tol}")
        self.tol = tol  # the largest projected gradient of the dual accepted as converged

    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        # cons: the concept's constraints of the batch in float64 -- cons.gains [B, K, J] (the dense rows),
        # cons.eps [B, K], cons.rows [B, K] (real rows), cons.joint [B, J] (real joint actions).
        gains, eps = cons.gains.cpu().numpy(), cons.eps.cpu().numpy()
        rows, joint = cons.rows.cpu().numpy(), cons.joint.cpu().numpy()
        alpha = np.zeros(rows.shape)
        converged = np.ones(rows.shape[0], dtype=bool)
        for b in range(rows.shape[0]):
            d, e = gains[b][rows[b]][:, joint[b]], eps[b][rows[b]]

            def dual(a: np.ndarray) -> tuple[float, np.ndarray]:
                # f(a) = logsumexp(-D^T a) + a.eps (up to a constant) and its gradient eps - D sigma
                logits = -a @ d
                top = logits.max()
                weights = np.exp(logits - top)
                return top + np.log(weights.sum()) + a @ e, e - d @ (weights / weights.sum())

            start = np.zeros(len(e)) if alpha0 is None else alpha0[b].cpu().numpy()[rows[b]]
            found = minimize(dual, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(e),
                             options={"ftol": 0.0, "gtol": self.tol, "maxiter": 10_000, "maxcor": 30})
            alpha[b, rows[b]] = found.x
            # Converged: the projected gradient (each row's excess over its tolerance, and the slack of the rows
            # with a positive dual) is within tol; L-BFGS-B may stop in a line search at the optimum itself.
            projected = found.x - np.maximum(0.0, found.x - dual(found.x)[1])
            converged[b] = np.abs(projected).max(initial=0.0) <= self.tol
        if not converged.all():  # flagged and warned about, never hidden
            warnings.warn(f"scipy_dual: {int((~converged).sum())} of {len(converged)} games did not converge",
                          NonConvergenceWarning, stacklevel=4)
        duals = torch.as_tensor(alpha)
        sigma = torch.softmax(cons.log_target - cons.operator.transpose(duals), dim=1)
        return SolverOutput(sigma, duals, {"converged": torch.as_tensor(converged)})


@hookimpl
def did_register_blocks(register: Registry) -> None:
    register.add(ScipyDualBlock.name, ScipyDualBlock)
