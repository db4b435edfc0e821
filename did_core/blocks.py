"""The equilibrium-block interface (docs/mathematics.md, section 4).

A block maps a batch of games ``[B, N, A_1..A_N]``, an action mask ``[B, N, A_max]``, a tolerance and a
concept to the eps-maximum-entropy equilibrium of that concept, differentiably in the
payoffs. The leading axis is always the batch: a single game is passed as
``games.unsqueeze(0)``.

There is one call path: :meth:`EquilibriumBlock.__call__` validates the input,
builds the concept's matrix-free constraint system (:func:`did_core.equilibria.constraints`),
calls the subclass's :meth:`~EquilibriumBlock.solve` and reports, per game, in
``Equilibrium.info``: ``gap``, ``violation``, ``entropy`` and ``active`` (rows with a
positive multiplier, when the block has duals). Two kinds of block exist:

* ``DualSolverBlock``: solves the dual to optimality (subclasses implement
  :meth:`~DualSolverBlock.solve_dual`); its backward pass is the implicit
  differentiation of ``did_core.implicit``, written once for every exact solver;
* any other ``EquilibriumBlock`` (a learned block) is differentiated by autograd.

Blocks declare :class:`Capabilities` (exact or approximate, the concepts and devices
they support), so the core picks an exact block by what it can do, never by name.

**Size guard.** Before solving, :meth:`EquilibriumBlock.check_size` compares the
block's estimate of the memory a call needs (:meth:`~EquilibriumBlock.memory_bytes`
of a :class:`SolveSize`: batch, joint actions, constraint rows) with its
``max_memory_gb`` and refuses an oversized call with a one-line
:class:`SolveTooLarge`, instead of swapping, being killed or running for hours. A
block that estimates its memory takes the limit as its option ``max_memory_gb``
(validated by :func:`memory_limit`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from did_core.concepts import Concept
from did_core.equilibria import Constraints, Epsilon, active_count, constraints, entropy, masked_row_max
from did_core.files import shown
from did_core.games import check_games
from did_core.implicit import implicit_vjp

__all__ = ["Capabilities", "capabilities_of", "Equilibrium", "EquilibriumBlock", "DualSolverBlock", "SolverOutput",
           "NonConvergenceWarning", "SolveSize", "SolveTooLarge", "InfeasibleConcept", "memory_limit"]

GIB = float(1 << 30)


class NonConvergenceWarning(RuntimeWarning):
    """Some games of a batch did not reach the block's tolerance; they are flagged false in ``info["converged"]``.

    Blocks warn with this category (or a subclass of it), so that where the core solves
    many batches for one report it can silence the warnings and count the flagged games
    instead (:mod:`did_core.convergence`).
    """


@dataclass(frozen=True)
class Capabilities:
    """What a block can do: ``exact`` (solves to optimality, no approximation), the concepts it supports
    (``None``: every registered concept), the device types it runs on, and a ``preference`` among exact
    blocks (the highest is the default exact block)."""

    exact: bool = False
    concepts: tuple[str, ...] | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    preference: int = 0

    def supports(self, concept: str) -> bool:
        """Whether the block solves ``concept``."""
        return self.concepts is None or concept in self.concepts


def capabilities_of(factory: Any) -> Capabilities:
    """The capabilities a registered block factory declares (a plain factory: approximate, any concept)."""
    declared = getattr(factory, "capabilities", None)
    return declared if isinstance(declared, Capabilities) else Capabilities()


@dataclass(frozen=True)
class SolveSize:
    """What one block call solves, known before it starts: ``batch`` games of ``players`` players with padded
    action counts ``sizes``, ``joints`` joint actions ``J`` and ``rows`` constraint rows ``K`` of ``concept``
    each, at most ``nonzeros`` nonzero entries in one game's rows ``D [K, J]``, and whether the call records a
    graph for backpropagation (``grad``)."""

    batch: int
    players: int
    sizes: tuple[int, ...]
    joints: int
    rows: int
    nonzeros: int
    concept: str
    grad: bool = False

    @classmethod
    def of(cls, cons: Constraints, grad: bool = False) -> "SolveSize":
        """The size of solving the constraint system ``cons`` (``grad``: with a graph to backpropagate)."""
        op = cons.operator
        return cls(op.batch, op.n_players, tuple(op.sizes), op.joints, op.n_rows, op.nonzeros(), cons.concept.name,
                   grad)

    def describe(self) -> str:
        """E.g. ``"a batch of 64 2-player 16x16 games (ce: 256 joint actions, 512 rows each)"``."""
        kind = f"{self.players}-player {'x'.join(map(str, self.sizes))}"
        games = f"a {kind} game" if self.batch == 1 else f"a batch of {self.batch} {kind} games"
        return f"{games} ({self.concept}: {self.joints} joint actions, {self.rows} rows{' each' * (self.batch > 1)})"


class SolveTooLarge(ValueError):
    """A call whose estimated memory is over the block's ``max_memory_gb``: refused before it starts."""


class InfeasibleConcept(ValueError):
    """The concept has no eps-equilibrium in some games of a batch: no joint satisfies their constraint rows.

    A user's error (a larger ``eps``, other concept options or another concept), not a solver's: an exact block
    that finds a game infeasible (a solver's certificate) raises this instead of returning an answer. The message
    is one line naming the block, the concept, the tolerance and the games; ``games`` holds their batch indices.
    """

    def __init__(self, block: str, cons: Constraints, games: "list[int]") -> None:
        self.games = list(games)
        shown_games = ", ".join(map(str, self.games[:10])) + (", ..." if len(self.games) > 10 else "")
        count = cons.rows.shape[0]
        which = (f"game {shown_games}" if len(self.games) == 1 else f"games {shown_games}") + (
            f" of the batch of {count}" if count > 1 else "")
        kind = "relative" if cons.epsilon.relative else "absolute"
        options = getattr(cons.concept, "options", None)
        settings = ", ".join(f"{k}={v!r}" for k, v in (options.model_dump() if options is not None else {}).items())
        concept = f"{cons.concept.name!r}" + (f" ({settings})" if settings else "")
        super().__init__(f"block {block!r}: concept {concept} has no equilibrium in {which} (eps "
                         f"{cons.epsilon.value:g} {kind}): no joint satisfies its constraints there; raise eps or "
                         f"relax the concept")


def memory_limit(value: Any) -> float:
    """A validated ``max_memory_gb`` option: a finite number of GiB > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"max_memory_gb must be a number of GiB > 0, got {shown(value)}")
    return float(value)


@dataclass
class Equilibrium:
    """A block's answer for a batch.

    ``sigma [B, A_1..A_N]`` (zero on padded joint actions); ``alpha`` the duals in
    the concept's structured shape ``[B, *dual_shape]`` (e.g. ``[B, N, A_max]``), or
    ``None``; ``eps [B, N]`` the tolerance used per player; ``concept`` the concept solved;
    ``info`` per-game diagnostics, each ``[B]``.
    """

    sigma: Tensor
    alpha: Tensor | None
    eps: Tensor
    concept: Concept
    info: dict[str, Tensor] = field(default_factory=dict)


class EquilibriumBlock(ABC):
    """Base class of every block: validates input, solves, reports quality.

    Subclasses implement :meth:`solve` and declare ``capabilities``. Options a block
    takes are given to its constructor (the factory registered through
    ``did_register_blocks``); per-call inputs (a warm start ``alpha0``) travel through
    ``__call__``.
    """

    name: str = "block"
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The most memory, in GiB, a call may be estimated to need (``None``: no limit); see :meth:`check_size`.
    max_memory_gb: float | None = None

    def __call__(
        self,
        games: Tensor,
        mask: Tensor | None = None,
        *,
        concept: Concept,
        eps: Epsilon | float = 0.05,
        alpha0: Tensor | None = None,
    ) -> Equilibrium:
        """Solve a batch ``games [B, N, A_1..A_N]`` (``mask [B, N, A_max]``, ``None``: all real) under ``concept``.

        ``concept`` is a :class:`~did_core.concepts.Concept` object (a name becomes one at the edge:
        :func:`did_core.plugins.get_concept`). ``alpha0``: duals of the same batch (structured or flat
        ``[B, K]``) to start from; blocks that cannot use them ignore them.
        """
        mask = check_games(games, mask)
        if not isinstance(concept, Concept):
            raise TypeError(f"concept must be a did_core.concepts.Concept, got {concept!r} (turn a name into one "
                            f"with did_core.plugins.get_concept)")
        if not self.capabilities.supports(concept.name):
            raise ValueError(f"block {self.name!r} does not support concept {concept.name!r}; "
                             f"it supports {', '.join(self.capabilities.concepts or ())}")
        epsilon = Epsilon.of(eps)
        with torch.no_grad():
            cons = constraints(games.detach().to(torch.float64), mask, concept, epsilon)
        self.check_size(SolveSize.of(cons, grad=games.requires_grad and torch.is_grad_enabled()))
        if alpha0 is not None:
            if alpha0.shape[0] != games.shape[0] or alpha0[0].numel() != cons.operator.n_rows:
                raise ValueError(f"alpha0 must hold {cons.operator.n_rows} duals for each of {games.shape[0]} "
                                 f"games, got shape {list(alpha0.shape)}")
            alpha0 = alpha0.detach().reshape(games.shape[0], -1).to(torch.float64)
        eq = self.solve(games, mask, cons, alpha0)
        with torch.no_grad():
            flat = eq.sigma.detach().reshape(games.shape[0], -1).to(torch.float64)
            regrets = eq.info.pop("regrets", None)
            regrets = cons.operator.regrets(flat) if regrets is None else regrets
            eq.info.setdefault("gap", masked_row_max(regrets, cons.rows))
            eq.info.setdefault("violation", masked_row_max(regrets - cons.eps, cons.rows).clamp_min(0.0))
            eq.info.setdefault("entropy", entropy(flat))
            if eq.alpha is not None:
                eq.info.setdefault("active", active_count(eq.alpha.detach().reshape(games.shape[0], -1), cons))
        return eq

    def memory_bytes(self, size: SolveSize) -> float | None:
        """An upper estimate of the memory (bytes) a call of ``size`` needs; ``None`` (the default): not
        estimated, so never refused."""
        return None

    def check_size(self, size: SolveSize) -> None:
        """Refuse, with a one-line :class:`SolveTooLarge`, a call estimated to need more than ``max_memory_gb``."""
        needed = self.memory_bytes(size)
        if needed is None or self.max_memory_gb is None or needed <= self.max_memory_gb * GIB:
            return
        raise SolveTooLarge(
            f"block {self.name!r}: {size.describe()} would need about {needed / GIB:.3g} GiB of memory, over its "
            f"limit of {self.max_memory_gb:g} GiB; solve smaller games or batches, or raise the block option "
            f"max_memory_gb (e.g. --block-options '{{max_memory_gb: {math.ceil(needed / GIB)}}}')")

    @abstractmethod
    def solve(self, games: Tensor, mask: Tensor, cons: Constraints, alpha0: Tensor | None) -> Equilibrium:
        """Solve a validated batch.

        ``cons`` is the constraint system of the detached games in float64 (its
        ``concept`` and ``epsilon`` are the call's); ``alpha0 [B, K]`` a float64 warm start
        or ``None``. ``info`` may carry ``regrets [B, K]`` (``D sigma``) to spare the report
        one product.
        """


@dataclass
class SolverOutput:
    """What a dual solver returns for a batch: flat ``sigma [B, J]``, flat ``alpha [B, K]``, per-game info
    (``regrets [B, K]`` = ``D sigma`` may be included)."""

    sigma: Tensor
    alpha: Tensor
    info: dict[str, Any] = field(default_factory=dict)


class _ImplicitSolve(torch.autograd.Function):
    """Identity on the solved ``sigma``, with the implicit-function backward into ``games``."""

    @staticmethod
    def forward(ctx: Any, games: Tensor, mask: Tensor, cons: Constraints, alpha: Tensor,
                sigma: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(games.detach(), mask, alpha)
        ctx.concept, ctx.epsilon = cons.concept, cons.epsilon
        return sigma

    @staticmethod
    def backward(ctx: Any, grad_sigma: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        games, mask, alpha = ctx.saved_tensors
        return implicit_vjp(games, mask, ctx.concept, ctx.epsilon, alpha, grad_sigma), None, None, None, None


class DualSolverBlock(EquilibriumBlock):
    """A block that solves the eps-ME program to optimality and returns its duals.

    Subclasses implement :meth:`solve_dual` on the detached float64 system; gradients
    come from implicit differentiation of the optimality conditions, never from
    iterations.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(exact=True)

    @abstractmethod
    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        """Solve every game of the batch in float64; flag (never hide) games that did not converge.

        Flag them false in ``info["converged"]`` and, to tell the user, warn with
        :class:`NonConvergenceWarning`.
        """

    def solve(self, games: Tensor, mask: Tensor, cons: Constraints, alpha0: Tensor | None) -> Equilibrium:
        result = self.solve_dual(cons, alpha0)
        to = {"dtype": games.dtype, "device": games.device}
        alpha = result.alpha.to(**to)
        sigma = _ImplicitSolve.apply(games, mask, cons, alpha, result.sigma.to(**to))
        info = {k: v if isinstance(v, Tensor) else torch.as_tensor(v) for k, v in result.info.items()}
        return Equilibrium(
            sigma=cons.unflatten_joint(sigma),
            alpha=cons.unflatten_dual(alpha),
            eps=cons.epsilon.per_player(games.detach(), mask),
            concept=cons.concept,
            info=info,
        )
