"""The exact block: each game's eps-ME (C)CE solved by cvxpy with ECOS (docs/mathematics.md, section 4.2).

Forward: maximise ``sum entr(sigma)`` over the real joint actions subject to the
real constraint rows ``D sigma <= eps`` and ``sum sigma = 1``, one game at a
time. The constraint multipliers are the dual ``alpha``. If ECOS fails, another
installed conic solver is tried with a warning; a game no solver solves raises an
error naming its batch index, and games every solver finds infeasible (no joint
satisfies the concept's rows) are refused together, with one line
(``did_core.blocks.InfeasibleConcept``). Backward: implicit differentiation
(``did_core.implicit``), shared with every exact solver.

Reuse. Building a cvxpy problem and compiling it to ECOS's matrices costs more
than ECOS's own solve on small games, so the program is written once with
parameters (:class:`EntropyProgram`: the entries of ``D`` on a fixed support and
``eps``; DPP, so cvxpy compiles it once and a re-solve only refills the solver's
matrices; a fallback solver compiles it for itself, and the next ECOS solve
compiles it again) and re-solved with each game's values. Games of a batch differ in their
real rows ``K'`` and real joint actions ``J'`` under masks, so each block instance
keeps a least-recently-used cache of programs keyed by ``(K', J')``
(``cache_size``, 32 by default). A program's support is the union of the nonzero
entries of the games it has served: a game with a nonzero outside it (another
concept or action split with the same ``(K', J')``, or earlier games had ties)
replaces the cached program by one over the union. ``D`` is a parameter on its
support, not a dense ``[K', J']`` parameter: a dense one hands ECOS its explicit
zeros and makes its factorisations dense (CE rows are nonzero on a ``1/A_p``
share of the joints), slower than rebuilding the problem from 8x8 games on.
cvxpy's sparse parameters (``Parameter(sparsity=...)``) keep ECOS's matrices
sparse only from cvxpy 1.9; this form works with every cvxpy the plugin accepts.

Size. Compiling a program with ``m`` entries on its support makes cvxpy build index
arrays of about ``m^2`` int64 (measured with cvxpy 1.9: 0.45 GiB for a 16x16 CE game,
``m`` = 7680; 5.4 GiB for 24x24; a 32x32 game asks for 30 GiB at once), so the block
refuses calls estimated over ``max_memory_gb`` (default 4 GiB: two-player (C)CE
games up to 22x22) before it forms anything (:meth:`EcosBlock.memory_bytes`).

Ctrl-C. ECOS (as SCS) installs its own SIGINT handler while it runs and ends early
on a Ctrl-C, as a failure or an inaccurate optimum, which cvxpy would report as a
solver failure (sending the game on to the next solver) or an answer. A solve that
caught a SIGINT is recognised (:func:`caught_sigint`) and the signal handed on to
Python's handler: ``KeyboardInterrupt``, or, where the handler only notes a stop
request (``did train`` stops at the next step boundary), the same solver again.

Example::

    >>> import torch
    >>> from did_core.games import classic_game
    >>> from did_exact_cvx import EcosBlock
    >>> from did_core.plugins import get_concept
    >>> eq = EcosBlock()(classic_game("chicken").unsqueeze(0), concept=get_concept("ce"), eps=0.05)
    >>> eq.sigma.shape
    torch.Size([1, 2, 2])
"""

from __future__ import annotations

import ctypes
import functools
import signal
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from did_core.blocks import Capabilities, DualSolverBlock, InfeasibleConcept, SolveSize, SolverOutput, memory_limit
from did_core.equilibria import Constraints
from did_core.files import shown

__all__ = ["EcosBlock", "EntropyProgram", "solve_game", "SolverFailure", "GameInfeasible", "caught_sigint"]

FALLBACK_SOLVERS: tuple[str, ...] = ("CLARABEL", "SCS")
ECOS_OPTIONS = {"max_iters": 500, "abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10}


class SolverFailure(RuntimeError):
    """No conic solver could solve a game."""


class GameInfeasible(SolverFailure):
    """Every conic solver that ran found the game's program infeasible: no joint satisfies its rows."""


@functools.cache
def installed_solvers() -> frozenset[str]:
    """cvxpy's installed solvers, asked once per process (each ask probes imports: ~5 ms, more than a solve)."""
    return frozenset(cp.installed_solvers())


class EntropyProgram:
    """The eps-ME program of games with ``K'`` real rows and ``J'`` real joint actions, as cvxpy parameters.

    **Arguments:** ``support [K', J']`` (bool): the entries of ``D`` the program can
    hold; every game it solves must be zero outside them. The rows are
    ``D sigma = S (d * (P sigma))`` with ``d`` the parameter of ``D``'s entries on
    the support (row-major), ``P`` picking each entry's joint action and ``S``
    summing each row's entries: DPP, so solving again with new values does not
    recompile the problem.
    """

    def __init__(self, support: np.ndarray) -> None:
        support = np.array(support, dtype=bool)
        k, j = support.shape
        if k and not support.any():
            support[0, 0] = True  # all-zero rows: one (zero) entry keeps the parameter non-empty
        self.shape: tuple[int, int] = (k, j)
        self.support = support
        self.sigma = cp.Variable(j)
        self._entries = np.nonzero(support)
        self.rows: cp.Constraint | None = None
        self.gains: cp.Parameter | None = None
        self.eps: cp.Parameter | None = None
        cons = [cp.sum(self.sigma) == 1]
        if k:
            row, col = self._entries
            m = len(row)
            self.gains, self.eps = cp.Parameter(m), cp.Parameter(k)
            pick = cp.Constant(sp.csr_matrix((np.ones(m), (np.arange(m), col)), shape=(m, j)))
            total = cp.Constant(sp.csr_matrix((np.ones(m), (row, np.arange(m))), shape=(k, m)))
            self.rows = total @ cp.multiply(self.gains, pick @ self.sigma) <= self.eps
            cons.insert(0, self.rows)
        self.problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(self.sigma))), cons)

    def covers(self, gains: np.ndarray) -> bool:
        """Whether ``gains [K', J']`` has this program's shape and no nonzero outside its support."""
        return gains.shape == self.shape and not np.any(gains[~self.support])

    def load(self, gains: np.ndarray, eps: np.ndarray) -> None:
        """Set the parameters to one game's ``gains [K', J']`` and ``eps [K']``."""
        if not self.covers(gains):
            raise ValueError(f"gains of shape {list(gains.shape)} do not fit this program "
                             f"(shape {list(self.shape)}, nonzeros only on its support)")
        if self.gains is not None and self.eps is not None:
            self.gains.value = gains[self._entries]
            self.eps.value = eps

    def duals(self) -> np.ndarray:
        """The multipliers ``alpha [K'] >= 0`` of the rows after a solve."""
        if self.rows is None:
            return np.zeros(0)
        return np.clip(self.rows.dual_value, 0.0, None)


#: Exit codes of a solve a solver ended on a SIGINT it caught (ECOS ``exitFlag``, SCS ``status_val``).
SIGINT_STATUS: dict[str, tuple[str, int]] = {"ECOS": ("exitFlag", -4), "SCS": ("status_val", -5)}


@functools.cache
def _ecos_caught_sigint() -> Callable[[], int]:
    """ECOS's own record of a SIGINT during its last solve (its exported C function ``check_ctrlc``).

    An ECOS stopped by Ctrl-C returns an *inaccurate optimum* instead of its SIGINT code
    when its iterate is close enough; only this record tells the two apart. A build
    that does not export it gives a function returning 0 (the exit code still tells).
    """
    try:
        import _ecos

        check = ctypes.CDLL(_ecos.__file__).check_ctrlc
    except (ImportError, OSError, AttributeError):
        return lambda: 0
    check.restype = ctypes.c_int
    return check


def caught_sigint(solver: str, raw: Any) -> bool:
    """Whether the raw result ``raw`` of ``solver`` (cvxpy's ``solve_via_data``) ended on a Ctrl-C it caught."""
    info = raw.get("info") if isinstance(raw, dict) else None
    if solver not in SIGINT_STATUS or not isinstance(info, dict):
        return False
    key, code = SIGINT_STATUS[solver]
    return info.get(key) == code or (solver == "ECOS" and _ecos_caught_sigint()() != 0)


def _run_solver(problem: cp.Problem, solver: str, options: dict[str, Any]) -> None:
    """``problem.solve(solver=solver, **options)``, handing a Ctrl-C the solver caught on to Python.

    The three public steps of ``Problem.solve`` (compile, which reuses a DPP program's
    compilation; solve; unpack, which raises ``SolverError`` on a failure), with a look
    at the solver's raw result in between: after a caught SIGINT, Python's handler gets
    it (``KeyboardInterrupt`` by default) and, if it returns, the solver runs again.
    """
    data, chain, inverse = problem.get_problem_data(solver, solver_opts=options)
    raw = chain.solve_via_data(problem, data, False, False, options)
    while caught_sigint(solver, raw):
        signal.raise_signal(signal.SIGINT)
        raw = chain.solve_via_data(problem, data, False, False, options)
    problem.unpack_results(raw, chain, inverse)


def solve_game(gains: np.ndarray, eps: np.ndarray, solvers: tuple[str, ...] = ("ECOS",) + FALLBACK_SOLVERS,
               program: EntropyProgram | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Solve one game's eps-ME program on its real rows and joint actions.

    **Arguments:** ``gains [K, J]``, ``eps [K]``; ``program``: a cached
    :class:`EntropyProgram` of shape ``(K, J)`` whose support covers ``gains`` to
    re-solve (``None``: build one for this game only).
    **Returns:** ``sigma [J]`` (a distribution), ``alpha [K] >= 0``, the solver used. Raises
    :class:`GameInfeasible` when every solver that ran reports the program infeasible, else
    :class:`SolverFailure` when none solves it.
    """
    program = EntropyProgram(gains != 0) if program is None else program
    program.load(gains, eps)
    problem, sigma = program.problem, program.sigma
    errors, infeasible = [], []
    for i, solver in enumerate(s for s in solvers if s in installed_solvers()):
        options = ECOS_OPTIONS if solver == "ECOS" else {}
        try:
            _run_solver(problem, solver, options)
        except cp.error.SolverError as exc:
            errors.append(f"{solver}: {exc}")
            continue
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and sigma.value is not None:
            if i > 0 or problem.status == cp.OPTIMAL_INACCURATE:
                warnings.warn(f"eps-ME solve: {solver} returned {problem.status} after {'; '.join(errors) or 'none'}",
                              RuntimeWarning, stacklevel=3)
            value = np.clip(sigma.value, 0.0, None)
            return value / value.sum(), program.duals(), solver
        errors.append(f"{solver}: status {problem.status}")
        infeasible.append(problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE))
    if infeasible and len(infeasible) == len(errors) and all(infeasible):
        raise GameInfeasible("; ".join(errors))
    raise SolverFailure("; ".join(errors) or "no conic solver installed")


class EcosBlock(DualSolverBlock):
    """Exact eps-ME (C)CE by cvxpy + ECOS per game, differentiable by implicit differentiation.

    **Arguments:** ``cache_size``: how many parametrised programs (one per real shape
    ``(K', J')``) the block keeps, least recently used dropped first; ``max_memory_gb``:
    the most memory a call may be estimated to need (default 4, see :meth:`memory_bytes`).
    """

    name = "exact_cvx"
    capabilities = Capabilities(exact=True, devices=("cpu",))

    def __init__(self, cache_size: int = 32, max_memory_gb: float = 4.0) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be an int >= 1, got {shown(cache_size)}")
        self.cache_size = cache_size
        self.max_memory_gb = memory_limit(max_memory_gb)
        self._programs: OrderedDict[tuple[int, int], EntropyProgram] = OrderedDict()

    def memory_bytes(self, size: SolveSize) -> float:
        """The batch's dense rows ``[B, K, J]`` in float64 and the compilation of one program with ``m``
        entries on its support, ``8 m^2`` bytes (``m``: the concept's bound on one game's nonzeros)."""
        return 8.0 * (size.batch * size.rows * size.joints + float(size.nonzeros) ** 2)

    @property
    def cached_shapes(self) -> list[tuple[int, int]]:
        """The ``(K', J')`` of the cached programs, least recently used first."""
        return list(self._programs)

    def program(self, support: np.ndarray) -> EntropyProgram:
        """The cached program of ``support [K', J']``'s shape, rebuilt over the union if it does not cover it."""
        key = (int(support.shape[0]), int(support.shape[1]))
        program = self._programs.pop(key, None)
        if program is None or np.any(support & ~program.support):
            program = EntropyProgram(support if program is None else support | program.support)
        self._programs[key] = program
        while len(self._programs) > self.cache_size:
            self._programs.popitem(last=False)
        return program

    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        batch = cons.rows.shape[0]
        gains = cons.gains.detach().cpu().double().numpy()
        eps_rows = cons.eps.detach().cpu().double().numpy()
        rows = cons.rows.cpu().numpy()
        joint = cons.joint.cpu().numpy()
        real = [(gains[b][rows[b]][:, joint[b]], eps_rows[b][rows[b]]) for b in range(batch)]
        shapes: dict[tuple[int, int], list[int]] = {}
        for b, (d, _) in enumerate(real):
            shapes.setdefault(d.shape, []).append(b)
        sigma = np.zeros(joint.shape)
        alpha = np.zeros(rows.shape)
        infeasible = []
        for shape, members in shapes.items():
            support = np.zeros(shape, dtype=bool)
            for b in members:
                support |= real[b][0] != 0
            program = self.program(support)
            for b in members:
                try:
                    s, a, _ = solve_game(*real[b], program=program)
                except GameInfeasible:
                    infeasible.append(b)
                    continue
                except SolverFailure as exc:
                    raise SolverFailure(f"game {b} of the batch could not be solved: {exc}") from None
                sigma[b, joint[b]] = s
                alpha[b, rows[b]] = a
        if infeasible:
            raise InfeasibleConcept(self.name, cons, sorted(infeasible))
        to = {"dtype": torch.float64, "device": cons.rows.device}
        return SolverOutput(torch.as_tensor(sigma, **to), torch.as_tensor(alpha, **to),
                            {"converged": torch.ones(batch, dtype=torch.bool, device=cons.rows.device)})
