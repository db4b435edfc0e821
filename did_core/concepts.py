"""Equilibrium concepts as plugins: a concept is a system of linear constraints on the joint.

An eps-equilibrium of a concept is a joint ``sigma`` over joint actions that
satisfies ``D_k(G) . sigma <= eps_k`` for every constraint row ``k`` of the
concept (docs/mathematics.md, section 2). A concept therefore supplies, as a
function of the payoffs, its rows ``D [B, K, J]`` through a
:class:`ConstraintOperator`: products ``D x`` and ``D^T alpha`` and selected rows,
computed without forming ``D`` when the concept knows how (its ``dense()`` view
forms it, for conic solvers and tests). Every solver, the implicit backward pass
and every quality measure work on that interface only, so a concept registered
by a third-party distribution (``did_register_concepts``) works with every exact
block, ``did solve`` and ``did train`` without a line of the core changed.

Layouts: rows are flat, ``K`` per game (padded rows flagged false in
``real``); joints are flat in C order of ``[A_1..A_N]``, ``J = prod_p A_p``. A
concept whose rows are indexed per player and action declares a
:class:`DualLayout`; equivariant layers that produce duals (learned blocks)
support exactly those layouts.

Example (a third-party concept: coarse correlated equilibria in which no joint
action gets more than a share ``cap``, an option)::

    >>> import torch
    >>> from pydantic import Field
    >>> from did_core.concepts import Concept, DenseOperator, StackedOperator
    >>> from did_core.deviations import ActionDeviations
    >>> from did_core.options import Options
    >>> class CappedCCE(Concept):
    ...     name, description = "capped_cce", "CCE with P(a) <= cap for every joint action a"
    ...     class Options(Options):
    ...         cap: float = Field(0.3, gt=0, le=1)
    ...     def operator(self, games, mask):
    ...         cce = ActionDeviations(games, mask)  # the CCE rows (p, d)
    ...         cap = torch.eye(cce.joints, dtype=games.dtype).expand(cce.batch, -1, -1) - self.options.cap
    ...         return StackedOperator([cce, DenseOperator.extra_rows(cce, cap)])
    >>> CappedCCE(cap=0.25)
    <concept capped_cce cap=0.25>
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from did_core.games import action_shape, joint_mask
from did_core.options import Options, describe_options, validate_options

if TYPE_CHECKING:
    from did_core.equilibria import Epsilon

__all__ = [
    "ConstraintOperator",
    "DenseOperator",
    "StackedOperator",
    "DualLayout",
    "Concept",
]


class ConstraintOperator(ABC):
    """The constraint rows ``D [B, K, J]`` of a batch of games, as products.

    Built from ``games [B, N, A_1..A_N]`` and ``mask [B, N, A_max]``; differentiable in
    ``games`` (the implicit backward pass differentiates the products). Subclasses set
    ``real [B, K]`` (real rows; padded rows must be all-zero) and ``owners [K]`` (the
    player whose tolerance ``eps_p`` a row gets, ``-1`` for a row with tolerance 0) and
    implement the three products. Every product must equal the one with the dense
    rows, padded rows and joint actions included (zero there).

    **Attributes:** (set by ``ConstraintOperator.__init__`` from the games, except ``real`` and ``owners``)

    * ``sizes`` -- the padded action counts ``(A_1, .., A_N)`` of the games, a ``tuple[int, ...]``;
    * ``batch`` -- ``B``, the number of games;
    * ``n_players`` -- ``N``;
    * ``joints`` -- ``J = A_1 * .. * A_N``, the (padded) joint actions of one game;
    * ``joint`` -- the real joint actions ``[B, J]`` (bool, C order of ``[A_1..A_N]``), false where
      some player's action is padding (:func:`did_core.games.joint_mask`, flattened);
    * ``real`` -- the real rows ``[B, K]`` (bool); a padded row is all zero;
    * ``owners`` -- ``[K]`` (long), the player whose tolerance ``eps_p`` each row gets, ``-1`` for
      tolerance 0;
    * ``dtype``, ``device`` -- the games' (products come back in them).
    """

    real: Tensor
    owners: Tensor

    def __init__(self, games: Tensor, mask: Tensor) -> None:
        self.sizes = action_shape(games)
        self.batch, self.n_players = games.shape[:2]
        self.joints = math.prod(self.sizes)
        self.joint = joint_mask(mask, self.sizes).reshape(self.batch, self.joints)
        self.dtype, self.device = games.dtype, games.device

    @property
    def n_rows(self) -> int:
        """``K``, the number of (padded) constraint rows."""
        return self.real.shape[1]

    @abstractmethod
    def regrets(self, x: Tensor) -> Tensor:
        """``D x``, ``[B, K]``, for joints ``x [B, J]`` (expected deviation gains when ``x = sigma``)."""

    @abstractmethod
    def transpose(self, alpha: Tensor) -> Tensor:
        """``D^T alpha``, ``[B, J]``, for row weights ``alpha [B, K]``."""

    @abstractmethod
    def rows(self, index: Tensor, games: Tensor | None = None) -> Tensor:
        """The rows ``D[g, index[b, m], :]``, ``[B', M, J]``, for ``index [B', M]`` (long) of the games
        ``g = games[b]`` (``games [B']`` long; every game of the batch when ``None``)."""

    def dense(self) -> Tensor:
        """The dense rows ``D [B, K, J]`` (for conic solvers and tests; ``K`` times the games' memory)."""
        index = torch.arange(self.n_rows, device=self.device).expand(self.batch, -1)
        return self.rows(index)

    def nonzeros(self) -> int:
        """An upper bound of the nonzero entries of one game's rows ``D [K, J]``, known without forming them
        (default ``K J``): the memory of a solver that stores the rows sparsely."""
        return self.n_rows * self.joints

    def scale(self) -> Tensor:
        """The largest ``|D_kj|`` of each game, ``[B]`` (a solver's unit of payoff)."""
        flat = self.dense().abs().flatten(1)
        return flat.amax(dim=1) if flat.shape[1] else flat.new_zeros(self.batch)

    def log_target(self) -> Tensor:
        """Uniform log target over real joint actions, ``-inf`` elsewhere, ``[B, J]``."""
        count = self.joint.sum(dim=1, keepdim=True).to(self.dtype)
        return torch.where(self.joint, -torch.log(count), torch.full_like(count, -math.inf))

    def eps_rows(self, games: Tensor, mask: Tensor, eps: "Epsilon") -> Tensor:
        """Per-row tolerance ``[B, K]``: the owner's ``eps_p``, 0 on padded and unowned rows."""
        per_player = eps.per_player(games, mask)
        owned = self.owners >= 0
        out = per_player[:, self.owners.clamp_min(0)] * owned.to(per_player.dtype)
        return out * self.real


class DenseOperator(ConstraintOperator):
    """A :class:`ConstraintOperator` over explicit rows ``gains [B, K, J]`` (zero on padded rows and joints).

    **Arguments:** ``gains [B, K, J]``, ``real [B, K]``, ``owners [K]``, ``joint [B, J]``
    (real joint actions), ``sizes`` (the padded action counts).
    """

    def __init__(self, gains: Tensor, real: Tensor, owners: Tensor, joint: Tensor, sizes: Sequence[int]) -> None:
        self.sizes = tuple(sizes)
        self.batch, self.n_players = gains.shape[0], len(self.sizes)
        self.joints = math.prod(self.sizes)
        if tuple(gains.shape) != (self.batch, real.shape[1], self.joints):
            raise ValueError(f"gains must have shape {[self.batch, real.shape[1], self.joints]}, "
                             f"got {list(gains.shape)}")
        self.joint, self.real, self.owners = joint, real, owners
        self.dtype, self.device = gains.dtype, gains.device
        self.gains = gains * real.unsqueeze(2) * joint.unsqueeze(1)

    @classmethod
    def extra_rows(cls, like: ConstraintOperator, gains: Tensor, owners: Sequence[int] | None = None
                   ) -> "DenseOperator":
        """Rows ``gains [B, K', J]`` for the games of ``like``, all real, owned by ``owners`` (default: none)."""
        k = gains.shape[1]
        owner = torch.tensor([-1] * k if owners is None else list(owners), dtype=torch.long, device=like.device)
        real = torch.ones(like.batch, k, dtype=torch.bool, device=like.device)
        return cls(gains.to(like.dtype), real, owner, like.joint, like.sizes)

    def regrets(self, x: Tensor) -> Tensor:
        return torch.bmm(self.gains, x.unsqueeze(2)).squeeze(2)

    def transpose(self, alpha: Tensor) -> Tensor:
        return torch.bmm(alpha.unsqueeze(1), self.gains).squeeze(1)

    def rows(self, index: Tensor, games: Tensor | None = None) -> Tensor:
        gains = self.gains if games is None else self.gains.index_select(0, games)
        return gains.gather(1, index.unsqueeze(2).expand(-1, -1, gains.shape[2]))

    def dense(self) -> Tensor:
        return self.gains

    def nonzeros(self) -> int:
        counts = (self.gains != 0).flatten(1).sum(dim=1)
        return int(counts.max()) if counts.numel() else 0


class StackedOperator(ConstraintOperator):
    """The rows of several operators of the same games, one after the other (``K = sum K_i``)."""

    def __init__(self, parts: Sequence[ConstraintOperator]) -> None:
        if not parts:
            raise ValueError("StackedOperator needs at least one operator")
        first = parts[0]
        if any(p.batch != first.batch or p.sizes != first.sizes for p in parts):
            raise ValueError("stacked operators must describe the same games")
        self.parts = list(parts)
        self.sizes, self.batch, self.n_players, self.joints = first.sizes, first.batch, first.n_players, first.joints
        self.joint, self.dtype, self.device = first.joint, first.dtype, first.device
        self.real = torch.cat([p.real for p in parts], dim=1)
        self.owners = torch.cat([p.owners for p in parts])
        self._starts = [0]
        for p in parts:
            self._starts.append(self._starts[-1] + p.n_rows)

    def regrets(self, x: Tensor) -> Tensor:
        return torch.cat([p.regrets(x) for p in self.parts], dim=1)

    def transpose(self, alpha: Tensor) -> Tensor:
        return sum(p.transpose(alpha[:, s:e]) for p, s, e in zip(self.parts, self._starts, self._starts[1:]))

    def rows(self, index: Tensor, games: Tensor | None = None) -> Tensor:
        out = None
        for p, start, end in zip(self.parts, self._starts, self._starts[1:]):
            mine = (index >= start) & (index < end)
            part = p.rows((index - start).clamp(0, p.n_rows - 1), games) if p.n_rows else None
            if part is not None:
                out = part * mine.unsqueeze(2) if out is None else torch.where(mine.unsqueeze(2), part, out)
        assert out is not None
        return out

    def nonzeros(self) -> int:
        return sum(p.nonzeros() for p in self.parts)

    def scale(self) -> Tensor:
        return torch.stack([p.scale() for p in self.parts]).amax(dim=0)


class DualLayout(enum.Enum):
    """How a concept's rows are indexed per player, for layers that produce duals.

    ``ACTION``: row ``(p, d)``, duals ``[N, A_max]``, real where ``d`` is real.
    ``ACTION_PAIR``: row ``(p, r, d)``, duals ``[N, A_max, A_max]``, real where ``r`` and
    ``d`` are real and ``r != d``.
    """

    ACTION = "action"
    ACTION_PAIR = "action_pair"

    def shape(self, n_players: int, a_max: int) -> tuple[int, ...]:
        """The structured dual shape of one game."""
        return (n_players, a_max) if self is DualLayout.ACTION else (n_players, a_max, a_max)

    def mask(self, mask: Tensor) -> Tensor:
        """Real rows ``[B, *shape]`` of games with action mask ``mask [B, N, A_max]``."""
        if self is DualLayout.ACTION:
            return mask
        off_diagonal = ~torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
        return mask.unsqueeze(-1) & mask.unsqueeze(-2) & off_diagonal


class Concept(ABC):
    """An equilibrium concept: a name, a description, options and its constraint rows as a function of the payoffs.

    Subclasses set ``name`` and ``description`` and implement :meth:`operator`. A
    concept with per-player rows declares ``layout`` (its operator's row order must
    then be the layout's, flattened in C order); without one, its duals are flat
    ``[K]``. Register the class through ``did_register_concepts``.

    **Options.** A concept that takes options declares them as a pydantic model
    ``Options`` (a subclass of :class:`did_core.options.Options`, which forbids unknown
    fields); ``Concept(**options)`` validates them into ``self.options`` and refuses a
    wrong one with one line (``ValueError``). Users pass them as ``--concept-options``
    or the config field ``concept_options``. Two concepts are equal when their classes
    and options are.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    layout: ClassVar[DualLayout | None] = None
    Options: ClassVar[type[Options]] = Options

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(self.Options, f"concept {self.name!r}", options)

    @classmethod
    def describe_options(cls) -> str:
        """The concept's options in one line, e.g. ``"cap: float = 0.3"`` (``""``: none)."""
        return describe_options(cls.Options)

    @abstractmethod
    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        """The rows of ``games [B, N, A_1..A_N]`` with ``mask [B, N, A_max]`` (differentiable in ``games``)."""

    def dual_shape(self, sizes: Sequence[int]) -> tuple[int, ...]:
        """The shape of the duals of one game ``[N, A_1..A_N]`` with padded action counts ``sizes``: structured by
        ``layout`` (from ``N`` and ``max(sizes)``), else flat ``(K,)``, the rows of such a game (which need not be
        those of a square game)."""
        sizes = tuple(int(a) for a in sizes)
        if self.layout is not None:
            return self.layout.shape(len(sizes), max(sizes))
        return (self._probe(sizes, torch.ones(1, len(sizes), max(sizes), dtype=torch.bool)).n_rows,)

    def dual_mask(self, mask: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
        """Real rows ``[B, *dual_shape(sizes)]`` of games with padded action counts ``sizes`` (default: ``A_max``
        for every player, as a layout's duals are laid out) and action mask ``mask [B, N, A_max]``."""
        if self.layout is not None:
            return self.layout.mask(mask)
        sizes = tuple(sizes) if sizes is not None else (mask.shape[2],) * mask.shape[1]
        return self._probe(sizes, mask).real

    def _probe(self, sizes: tuple[int, ...], mask: Tensor) -> ConstraintOperator:
        """The operator of all-zero games of padded action counts ``sizes`` with ``mask [B, N, A_max]``."""
        if len(sizes) != mask.shape[1] or max(sizes) > mask.shape[2]:
            raise ValueError(f"sizes {list(sizes)} do not fit an action mask of shape {list(mask.shape)}")
        games = torch.zeros(mask.shape[0], len(sizes), *sizes, dtype=torch.float64, device=mask.device)
        mask = mask & (torch.arange(mask.shape[2], device=mask.device) < torch.tensor(sizes, device=mask.device)
                       .unsqueeze(1))
        return self.operator(games, mask)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Concept):
            return NotImplemented
        return type(self) is type(other) and getattr(self, "options", None) == getattr(other, "options", None)

    def __hash__(self) -> int:
        return hash((type(self), repr(getattr(self, "options", None))))

    def __repr__(self) -> str:
        options = getattr(self, "options", None)
        shown = "".join(f" {k}={v!r}" for k, v in (options.model_dump() if options is not None else {}).items())
        return f"<concept {self.name}{shown}>"

