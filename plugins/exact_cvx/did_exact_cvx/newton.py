"""The fast exact block: a batched projected Newton solver of the eps-ME dual (docs/mathematics.md, 3.3 and 4.3).

For every game of a batch at once, minimise over ``alpha >= 0``

    f(alpha) = logsumexp(log target - D^T alpha) + alpha . eps,
    grad f   = eps - D sigma,            Hess f = D Cov_sigma D^T,  Cov = diag(sigma) - sigma sigma^T,

and return ``sigma = softmax(log target - D^T alpha)``. Shapes: ``D [B, K, J]``
(rows x joint actions, padded rows all zero), ``alpha, eps [B, K]``, ``sigma [B, J]``.

Algorithm (all games advance together as one tensor program, in float64; the gains
are never formed: products come from the payoffs through the concept's ``ConstraintOperator``):

* **Working set.** Every ``check_every`` iterations (the only host synchronisation)
  the KKT residual is measured on all rows; the rows with ``alpha > 0`` or a negative
  gradient (violated constraints) of the unconverged games are gathered into a compact
  ``[B', M, J]`` system, and converged games leave the batch. CE has ``K = N A^2`` rows
  but few are ever free, so the Newton systems stay small.
* **Projected Newton** (Bertsekas, SIAM J. Control Optim. 20, 1982) on the working set:
  rows at (or, in nats, within ``min(0.001, ||projected gradient||)`` of) the bound with a
  positive gradient take a diagonally scaled gradient step; the others a Newton step with
  Levenberg-Marquardt damping ``mu diag(max_j |D_kj|^2)``, ``mu = lam ||g||`` (Yamashita and
  Fukushima 2001: superlinear even when the Hessian is singular, as for duplicate rows or
  CE with more free rows than joint actions; the damping also bounds the step of a row
  whose support has vanished). A failed Cholesky or a non-descent direction falls back
  to the scaled gradient.
* **Line search** along the projection arc ``max(0, alpha + t d)``: every trial step is
  evaluated at once (fractions of ``d``, then steps moving no logit by more than 20, 2,
  0.2 or 0.001 nats) and the largest passing Armijo is kept; a slack of float64
  resolution lets the full step through once the decrease is below it. ``lam`` shrinks
  after a full step and grows after a short or failed one.
* **Warm start** from any ``alpha0 >= 0``: the best of ``alpha0``, ``alpha0 / 2``,
  ``alpha0 / 10`` and ``0`` by ``f``, so a useless warm start costs nothing.
* **Stopping** on the scaled KKT residual
  ``max_k |min(c alpha_k, (eps_k - D_k sigma) / c)|`` (``c`` = the game's largest
  |gain|) ``<= tol``; with the default ``1e-10`` the violation of an O(1) game is below
  1e-9. Games that reach ``max_iter`` unconverged are flagged in ``info["converged"]``
  (and warned about, or raised), never silently returned.
* **Infeasible games.** Where no joint satisfies the rows (e.g. a cap on every joint
  action below ``1 / J``), ``f`` is unbounded below and the iterates run off. By weak
  duality ``f(alpha) >= -KL(sigma || target) >= min_j log target_j`` for every feasible
  ``sigma``, so an ``alpha`` with ``f`` a nat below that bound certifies that the game
  is infeasible: the game stops there, flagged in ``NewtonResult.infeasible``, and the
  block refuses the batch with one line (``did_core.blocks.InfeasibleConcept``).

The backward pass is the implicit differentiation of ``did_core.implicit`` on the
active set (``DualSolverBlock``): gradients never flow through the iterations.

Example::

    >>> import torch
    >>> from did_core.games import classic_game
    >>> from did_exact_cvx import NewtonBlock
    >>> block = NewtonBlock(tol=1e-10)
    >>> games = classic_game("chicken").unsqueeze(0).requires_grad_(True)
    >>> from did_core.plugins import get_concept
    >>> eq = block(games, concept=get_concept("ce"), eps=0.05)
    >>> bool(eq.info["converged"].all())
    True
    >>> eq.sigma[:, 0, 0].sum().backward()   # implicit gradient into the payoffs
    >>> again = block(games.detach(), concept=get_concept("ce"), eps=0.05, alpha0=eq.alpha)   # warm start
    >>> int(again.info["iterations"].max())
    0
"""

from __future__ import annotations

import ctypes
import math
import sys
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from did_core import blocks
from did_core.blocks import Capabilities, DualSolverBlock, InfeasibleConcept, SolveSize, SolverOutput, memory_limit
from did_core.concepts import ConstraintOperator, DenseOperator
from did_core.equilibria import Constraints
from did_core.files import shown

__all__ = [
    "NewtonBlock", "NewtonResult", "solve_dual_newton", "kkt_residual", "tune_cpu_allocator",
    "NonConvergenceWarning", "NonConvergenceError",
]

#: Trial step sizes of the parallel line search (largest first).
STEPS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.02)
#: ... followed by steps that move no logit by more than these many nats.
LOGIT_CAPS: tuple[float, ...] = (20.0, 2.0, 0.2, 1e-3)
#: A warm start alpha0 is replaced by the best of these multiples of it (0: the cold start).
WARM_SHRINK: tuple[float, ...] = (1.0, 0.5, 0.1, 0.0)
_ARMIJO = 1e-4
_BINDING_MAX = 1e-3
_LAM_START, _LAM_MIN, _LAM_MAX = 1e-2, 1e-4, 1e8


def tune_cpu_allocator(trim_threshold: int = 1 << 30, mmap_threshold: int = 1 << 25) -> bool:
    """Make glibc keep freed memory in the process instead of returning it to the OS. Opt-in, process-wide.

    The solver allocates many short-lived tensors of a few hundred KB to a few MB. By
    default glibc gives such blocks back to the OS when they are freed, and every new
    one then page-faults in again; on a busy machine that costs up to 10x the
    arithmetic (the inner Newton step of an 8x8 CE batch of 64: 1.8 ms tuned, 4-5 ms
    not). This raises ``M_TRIM_THRESHOLD`` and fixes ``M_MMAP_THRESHOLD`` (the effect
    PyTorch's CPU tuning guide gets from preloading jemalloc or tcmalloc); resident
    memory then stays at its high-water mark. Returns whether it applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_trim_threshold, int(trim_threshold)) == 1
                and libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1)


class NonConvergenceWarning(blocks.NonConvergenceWarning):
    """Some games of a batch did not reach the KKT tolerance within ``max_iter`` (the core's category: evaluations
    count these games instead of showing one warning per batch)."""


class NonConvergenceError(RuntimeError):
    """Raised instead of the warning when a block has ``on_failure="raise"``."""


@dataclass
class NewtonResult:
    """Solution of a batch: ``alpha [B, K]``, ``sigma [B, J]``, per-game ``iterations``,
    ``converged`` and ``kkt`` (scaled KKT residual), each ``[B]``, ``regrets = D sigma [B, K]``, and
    ``infeasible [B]``: games certified to have no feasible joint (their ``alpha`` is the certificate,
    their ``sigma`` no answer)."""

    alpha: Tensor
    sigma: Tensor
    iterations: Tensor
    converged: Tensor
    kkt: Tensor
    regrets: Tensor
    infeasible: Tensor


def kkt_residual(alpha: Tensor, grad: Tensor, rows: Tensor, scale: Tensor) -> Tensor:
    """Scaled KKT residual ``max_k |min(c alpha_k, grad_k / c)|`` over real rows, ``[B]``.

    ``scale`` ``c [B]`` makes both sides dimensionless (``alpha`` is in 1/payoff,
    ``grad`` in payoff). Zero exactly at the optimum of ``min_{alpha >= 0} f``;
    non-finite values give ``inf``.
    """
    c = scale.unsqueeze(1)
    res = torch.minimum(alpha * c, grad / c).abs()
    res = torch.where(rows, res, torch.zeros_like(res))
    out = res.amax(dim=1) if res.shape[1] else res.new_zeros(res.shape[0])
    return torch.where(torch.isfinite(out), out, torch.full_like(out, math.inf))


def _logsumexp(x: Tensor) -> Tensor:
    """``logsumexp`` over the last axis, for rows with at least one finite entry (fewer passes than torch's)."""
    top = x.amax(dim=-1, keepdim=True)
    return (x - top).exp_().sum(dim=-1).log_() + top.squeeze(-1)


def _newton_steps(alpha: Tensor, gains: Tensor, eps: Tensor, wmask: Tensor, log_target: Tensor, logits: Tensor,
                  scale: Tensor, lam: Tensor, iterations: Tensor, n_steps: int,
                  tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """``n_steps`` projected Newton iterations on a compact working set ``gains [B, M, J]``.

    Slots outside ``wmask`` must have zero gains, ``alpha`` and ``eps``; ``logits`` are
    ``log_target - gains^T alpha`` (every row outside the set has ``alpha = 0``). A game
    whose working-set residual reaches ``tol`` stops moving. Returns the new
    ``alpha [B, M]``, ``lam [B]`` and ``iterations [B]``.
    """
    batch, m = alpha.shape
    dtype, dev = alpha.dtype, alpha.device
    tiny = torch.finfo(dtype).tiny
    in_set = wmask.to(dtype)
    row_scale = gains.abs().amax(dim=2)
    row_scale = torch.where(row_scale > 0, row_scale, scale.unsqueeze(1).expand_as(row_scale))
    row_square = row_scale.square()
    c, inv_c = scale.unsqueeze(1), scale.reciprocal().unsqueeze(1)
    steps = torch.tensor(STEPS, dtype=dtype, device=dev).expand(batch, -1)
    caps = torch.tensor(LOGIT_CAPS, dtype=dtype, device=dev).unsqueeze(0)
    log_z = _logsumexp(logits)
    f = log_z + (alpha * eps).sum(dim=1)
    for _ in range(n_steps):
        sigma = torch.exp(logits - log_z.unsqueeze(1))
        regret = (gains * sigma.unsqueeze(1)).sum(dim=2)
        grad = (eps - regret) * in_set
        moving = torch.minimum(alpha * c, grad * inv_c).abs().amax(dim=1) > tol
        iterations = iterations + moving

        # Hessian D Cov D^T = (D - D sigma) diag(sigma) (D - D sigma)^T on the working set.
        centred = (gains - regret.unsqueeze(2)) * sigma.sqrt().unsqueeze(1)
        hess = torch.bmm(centred, centred.transpose(1, 2))

        # Bertsekas' binding set, in nats: near the bound with a positive gradient -> scaled gradient step.
        alpha_n, grad_n = alpha * row_scale, grad / row_scale
        width = torch.minimum(alpha_n, grad_n).norm(dim=1, keepdim=True).clamp_max(_BINDING_MAX)
        binding = (grad > 0) & (alpha_n <= width)
        free = in_set * ~binding

        # Levenberg-Marquardt damping mu * diag(|D_k|^2): it bounds the step of a row without curvature
        # (its support has vanished) and regularises singular systems; mu -> 0 as the gradient does.
        size = (grad_n.abs() * free).amax(dim=1).clamp_max(1.0)
        ridge = (lam * size).clamp_min(1e-15).unsqueeze(1) * row_square
        inv_sqrt = (hess.diagonal(dim1=1, dim2=2).clamp_min(0.0) + ridge).rsqrt()
        scaled = inv_sqrt * free
        system = hess * scaled.unsqueeze(2) * scaled.unsqueeze(1)
        system.diagonal(dim1=1, dim2=2).add_(free * ridge * inv_sqrt.square() + (1.0 - free))
        factor, info = torch.linalg.cholesky_ex(system)
        newton = torch.cholesky_solve((-grad * scaled).unsqueeze(2), factor).squeeze(2) * inv_sqrt
        gradient_step = -grad * inv_sqrt.square()
        direction = torch.where(binding, gradient_step, newton)
        bad = (info != 0) | ~((grad * direction).sum(dim=1) <= 0)
        direction = torch.where(bad.unsqueeze(1), gradient_step, direction)

        # Parallel line search along the projection arc max(0, alpha + t d): fixed fractions of the
        # step, then steps that move no logit by more than a few nats (a row whose support has
        # vanished has almost no curvature, and its Newton step is huge).
        reach = torch.bmm(direction.unsqueeze(1), gains).squeeze(1).abs().amax(dim=1, keepdim=True)
        ts = torch.cat([steps, (caps / reach.clamp_min(tiny)).clamp_max(1.0)], dim=1)
        trial = (alpha.unsqueeze(1) + ts.unsqueeze(2) * direction.unsqueeze(1)).clamp_min(0.0)
        trial_logits = log_target.unsqueeze(1) - torch.bmm(trial, gains)
        trial_z = _logsumexp(trial_logits)
        f_trial = trial_z + (trial * eps.unsqueeze(1)).sum(dim=2)
        predicted = ((trial - alpha.unsqueeze(1)) * grad.unsqueeze(1)).sum(dim=2)
        # Below float64 resolution of f the Armijo test is noise: the slack lets the (full) step through.
        accept = f_trial <= (f + 1e-14 * f.abs().clamp_min(1.0)).unsqueeze(1) + _ARMIJO * predicted
        first = accept.to(torch.int8).argmax(dim=1, keepdim=True)
        found = accept.gather(1, first).squeeze(1)
        step = moving & found
        alpha = torch.where(step.unsqueeze(1), trial.gather(1, first.unsqueeze(2).expand(-1, 1, m)).squeeze(1), alpha)
        logits = torch.where(step.unsqueeze(1),
                             trial_logits.gather(1, first.unsqueeze(2).expand(-1, 1, logits.shape[1])).squeeze(1),
                             logits)
        log_z = torch.where(step, trial_z.gather(1, first).squeeze(1), log_z)
        f = torch.where(step, f_trial.gather(1, first).squeeze(1), f)
        growth = torch.where(step & (first.squeeze(1) == 0), 0.25, torch.where(found, 2.0, 10.0))
        lam = torch.where(moving, lam * growth, lam).clamp(_LAM_MIN, _LAM_MAX)
    return alpha, lam, iterations


def solve_dual_newton(op: ConstraintOperator | Tensor, rows: Tensor, eps: Tensor, log_target: Tensor,
                      alpha0: Tensor | None = None, *, tol: float = 1e-10, max_iter: int = 100,
                      check_every: int = 3) -> NewtonResult:
    """Solve ``min_{alpha >= 0} f(alpha)`` for a batch of games at once.

    **Arguments:** ``op`` -- the rows ``D [B, K, J]`` of any concept as a float64
    :class:`~did_core.concepts.ConstraintOperator` (products only; the built-in concepts
    never form ``D``), or explicit rows ``[B, K, J]``; ``rows [B, K]`` (real rows), ``eps [B, K]``, ``log_target [B, J]``
    (``-inf`` on padded joint actions), optional warm start ``alpha0 [B, K]`` (clamped to ``>= 0``);
    ``tol`` on the scaled KKT residual, ``max_iter`` Newton iterations at most,
    convergence checked (one host synchronisation) every ``check_every`` iterations.

    **Returns:** a :class:`NewtonResult` in float64.
    """
    if tol <= 0 or max_iter < 0 or check_every < 1:
        raise ValueError(f"need tol > 0, max_iter >= 0, check_every >= 1; got {tol}, {max_iter}, {check_every}")
    batch, k = rows.shape
    dev = log_target.device
    if isinstance(op, Tensor):
        gains = op.detach().to(torch.float64)
        op = DenseOperator(gains, rows.bool(), torch.zeros(k, dtype=torch.long, device=dev),
                           torch.isfinite(log_target), (gains.shape[2],))
    rows = rows.to(device=dev, dtype=torch.bool)
    eps = eps.detach().to(torch.float64) * rows
    log_target = log_target.detach().to(torch.float64)
    if alpha0 is None:
        alpha = eps.new_zeros(batch, k)
    else:
        if tuple(alpha0.shape) != (batch, k):
            raise ValueError(f"alpha0 must have shape {[batch, k]}, got {list(alpha0.shape)}")
        alpha = alpha0.detach().to(device=dev, dtype=torch.float64).nan_to_num(0.0, 0.0, 0.0).clamp_min(0.0) * rows
        # A warm start is never worse than the cold one: the best of alpha0 shrunk toward 0 (0 included).
        shrink = torch.tensor(WARM_SHRINK, dtype=torch.float64, device=dev)
        logits = log_target.unsqueeze(1) - shrink.view(1, -1, 1) * op.transpose(alpha).unsqueeze(1)
        f = _logsumexp(logits) + shrink * (alpha * eps).sum(dim=1, keepdim=True)
        alpha = alpha * shrink[f.argmin(dim=1)].unsqueeze(1)
    scale = op.scale().to(torch.float64)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    # Weak duality: f(alpha) >= min_j log target_j where a feasible joint exists (see the module's docstring).
    floor = torch.where(torch.isfinite(log_target), log_target, torch.full_like(log_target, math.inf)).amin(dim=1)
    lam = torch.full((batch,), _LAM_START, dtype=torch.float64, device=dev)
    iterations = torch.zeros(batch, dtype=torch.long, device=dev)
    done = 0
    while True:
        logits = log_target - op.transpose(alpha)
        log_z = torch.logsumexp(logits, dim=1, keepdim=True)
        sigma = torch.exp(logits - log_z)
        regrets = op.regrets(sigma)
        grad = eps - regrets
        kkt = kkt_residual(alpha, grad, rows, scale)
        f = log_z.squeeze(1) + (alpha * eps).sum(dim=1)
        infeasible = torch.isfinite(floor) & (f < floor - 1.0)  # a certificate: no joint satisfies the rows
        converged = (kkt <= tol) & ~infeasible
        unfinished = ~converged & torch.isfinite(kkt) & ~infeasible
        working = rows & unfinished.unsqueeze(1) & ((alpha > 0) | (grad < 0))
        counts = working.sum(dim=1)
        if done >= max_iter or not k or not batch:
            break
        counts_host = counts.cpu()  # the one host synchronisation per round
        m = int(counts_host.max())
        if m == 0:
            break
        # Only unfinished games take part in the next round.
        live = None if bool((counts_host > 0).all()) else torch.nonzero(counts_host).squeeze(1).to(dev)
        sub = (lambda x: x) if live is None else (lambda x: x.index_select(0, live))  # noqa: E731
        index = torch.argsort((~sub(working)).to(torch.int8), dim=1, stable=True)[:, :m]
        wmask = sub(working).gather(1, index)
        w_gains = op.rows(index, live) * wmask.unsqueeze(2)
        w_alpha = torch.where(wmask, sub(alpha).gather(1, index), torch.zeros_like(wmask, dtype=alpha.dtype))
        n = min(check_every, max_iter - done)
        w_alpha, w_lam, w_iterations = _newton_steps(
            w_alpha, w_gains, sub(eps).gather(1, index) * wmask, wmask, sub(log_target), sub(logits), sub(scale),
            sub(lam), sub(iterations), n, tol)
        new_alpha = sub(alpha).scatter(1, index, torch.where(wmask, w_alpha, sub(alpha).gather(1, index)))
        if live is None:
            alpha, lam, iterations = new_alpha, w_lam, w_iterations
        else:
            alpha = alpha.index_copy(0, live, new_alpha)
            lam, iterations = lam.index_copy(0, live, w_lam), iterations.index_copy(0, live, w_iterations)
        done += n
    return NewtonResult(alpha, sigma, iterations, converged, kkt, regrets, infeasible)


class NewtonBlock(DualSolverBlock):
    """Exact eps-ME equilibrium of a whole batch, any concept, by projected Newton on the dual; implicit gradients.

    **Options:** ``tol`` (scaled KKT residual, default ``1e-10``), ``max_iter``
    (default 100), ``check_every`` (iterations between convergence checks, default 3),
    ``on_failure`` (``"warn"``, ``"raise"`` or ``"ignore"`` for games that do not converge;
    they are always flagged in ``info["converged"]``), ``warm_start`` (reuse the previous
    call's duals when the next batch has the same shape and concept, e.g. for local
    polishing), ``max_memory_gb`` (default 16: the size guard, see :meth:`memory_bytes`). A
    warm start can also be passed per call: ``block(games, alpha0=...)`` with structured
    (``Equilibrium.alpha``) or flat ``[B, K]`` duals.

    Games are solved in float64 through the concept's matrix-free operator (for CE and
    CCE the ``[B, K, J]`` rows are never formed); ``sigma`` and ``alpha`` come back in
    the games' dtype and device. ``info`` per game: ``iterations``, ``converged``, ``kkt``
    and, as for every block, ``gap``, ``violation``, ``entropy``, ``active``.
    """

    name = "exact_newton"
    capabilities = Capabilities(exact=True, preference=10)

    def __init__(self, tol: float = 1e-10, max_iter: int = 100, check_every: int = 3, on_failure: str = "warn",
                 warm_start: bool = False, max_memory_gb: float = 16.0) -> None:
        if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and 0 < tol < math.inf):
            raise ValueError(f"tol must be a finite number > 0, got {shown(tol)}")
        if not (isinstance(max_iter, int) and max_iter >= 0):
            raise ValueError(f"max_iter must be an int >= 0, got {shown(max_iter)}")
        if not (isinstance(check_every, int) and check_every >= 1):
            raise ValueError(f"check_every must be an int >= 1, got {shown(check_every)}")
        if on_failure not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_failure must be 'warn', 'raise' or 'ignore', got {shown(on_failure)}")
        self.tol, self.max_iter, self.check_every = float(tol), max_iter, check_every
        self.on_failure, self.warm_start = on_failure, bool(warm_start)
        self.max_memory_gb = memory_limit(max_memory_gb)
        self._last: tuple[tuple[int, ...], str, Tensor] | None = None

    def memory_bytes(self, size: SolveSize) -> float:
        """The worst case, every row in the working set (``M = K``): per game the rows ``[M, J]`` three times
        (gathered, weighted, centred) and four ``[M, M]`` systems (Hessian, scaled, factor, a temporary), in
        float64. Usually far fewer rows are free (a 100x100 CE game, estimated 16.4 GiB, peaks near 2 GiB)."""
        k, j = size.rows, size.joints
        return 8.0 * size.batch * (3 * k * j + 4 * k * k + 16 * j)

    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        batch = cons.rows.shape[0]
        key = ((batch, cons.operator.n_players, *cons.sizes), cons.concept.name)
        if alpha0 is None and self.warm_start and self._last is not None and self._last[:2] == key:
            alpha0 = self._last[2]
        result = solve_dual_newton(cons.operator, cons.rows, cons.eps, cons.log_target, alpha0,
                                   tol=self.tol, max_iter=self.max_iter, check_every=self.check_every)
        if bool(result.infeasible.any()):
            raise InfeasibleConcept(self.name, cons, torch.nonzero(result.infeasible).flatten().tolist())
        failed = int((~result.converged).sum())
        if failed and self.on_failure != "ignore":
            worst = float(result.kkt.max())
            message = (f"exact_newton: {failed} of {batch} games did not converge in {self.max_iter} iterations "
                       f"(worst KKT residual {worst:.3g} > tol {self.tol:g})")
            if self.on_failure == "raise":
                raise NonConvergenceError(message)
            warnings.warn(message, NonConvergenceWarning, stacklevel=4)
        if self.warm_start:
            self._last = (*key, result.alpha)
        return SolverOutput(result.sigma, result.alpha, {
            "iterations": result.iterations, "converged": result.converged, "kkt": result.kkt,
            "regrets": result.regrets,
        })
