"""The block ``no_regret``: followers modelled as no-regret learners, differentiable by unrolling.

Every player of every game runs its own learner (:mod:`did_no_regret.learners`) for
``rounds`` rounds, starting uniform; the block returns the time-averaged joint play
``sigma = (1 / T) sum_t prod_p x_p^t [B, A_1..A_N]``. For ``concept=get_concept("cce")`` the learners
minimise external regret, and the CCE gap of ``sigma`` is exactly the largest
average external regret of a player (Hedge: Freund & Schapire 1997; regret
matching: Hart & Mas-Colell 2000). For ``concept=get_concept("ce")`` each player runs the
Blum & Mansour (2007) swap-regret reduction, whose average play approaches the
correlated equilibria.

**Bayesian games.** On the agent-normal form of a Bayesian game
(:meth:`did_core.bayesian.BayesianGames.agent_normal_form`) every agent is one
(player, type) pair, so the block runs one learner per type on the type's
interim payoffs: the seed paper's multiplicative-weights followers (Hartline,
Syrgkanis & Tardos 2015), with the other players' types in expectation rather
than sampled each round. Their average play approaches the B-CCE (``cce``) or
B-CE (``ce``), and the gap is the largest average interim regret of a type.

**Tolerance.** A learner has no ``eps``: the joint is the ``T``-round average
whatever ``eps`` is asked, and ``info["gap"]`` / ``info["violation"]`` (computed by
the base class against the asked ``eps``) tell how far it is from an
eps-equilibrium of the asked concept; ``info["cce_gap"] [B]`` is the CCE gap
(the learners' largest average external regret) under either concept. The answer
is *not* the maximum-entropy equilibrium (the block is declared ``exact=False``).

**Gradients.** Autograd through every round (float64 recommended). The graph
keeps, per round, each player's strategy and learner state (``O(B N A_max)``, or
``O(B N A_max^2)`` for the swap learners) and the partial contractions of the
expected payoffs (``O(B sum_p J / A_p)`` for 3 or more players, none for 2): memory
is ``O(T B (N A_max^2 + sum_p J / A_p))`` floats, never ``O(T B J)``, because the
average is a running sum. Measured (float64, batch 64, T = 1000): 2-player 8x8
26 MB (CCE) / 237 MB (CE), 3-player 8x8x8 169 MB / 487 MB. ``grad_rounds = K``
differentiates only the last ``K`` rounds (truncated backpropagation, ``O(K)``
memory); the answer is the same (up to the order of summation).

**Sensitivity.** In exact arithmetic the learners are invariant to ``G_p -> c_p G_p +
h_p(a_-p)`` (they see payoffs divided by the own-action range ``R_p``). Some games
make the dynamics chaotic, and then rounding differences between two such games
grow over the rounds; the default (optimistic Hedge) is tame on the games tested,
optimistic regret matching (not RM+) less so.

Example::

    >>> import torch
    >>> from did_core.games import classic_game
    >>> from did_no_regret import NoRegretBlock
    >>> from did_core.plugins import get_concept
    >>> eq = NoRegretBlock(rounds=2000)(classic_game("matching_pennies").unsqueeze(0), concept=get_concept("cce"))
    >>> [round(v, 2) for v in eq.sigma.flatten().tolist()]
    [0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field, ValidationError, model_validator
from torch import Tensor

from did_core.blocks import Capabilities, Equilibrium, EquilibriumBlock, SolveSize
from did_core.deviations import ActionDeviations
from did_core.equilibria import Constraints, masked_row_max
from did_core.tasks import Options, options_error
from did_no_regret.learners import LearnerConfig, play

__all__ = ["NoRegretBlock", "NoRegretOptions"]


class NoRegretOptions(Options):
    """Options of ``no_regret`` (unknown or invalid ones are refused in one line)."""

    rounds: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = Field(
        1000, description="T, the number of rounds the learners play")
    learner: Literal["hedge", "regret_matching", "regret_matching_plus"] = Field(
        "hedge", description="multiplicative weights, regret matching, or regret matching+ (regrets clipped at 0)")
    eta: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="Hedge step in units of 1 / (player's own-action payoff range); "
                          "default 4 sqrt(8 ln A_p / T)")
    optimism: Annotated[bool, Field(strict=True)] = Field(
        True, description="count the last round's payoffs twice (optimistic Hedge, predictive regret matching)")
    grad_rounds: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        None, description="differentiate only the last K rounds (default: all)")
    max_memory_gb: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        16.0, description="refuse a call estimated to need more memory (GiB) than this (see memory_bytes)")

    @model_validator(mode="after")
    def _consistent(self) -> "NoRegretOptions":
        if self.eta is not None and self.learner != "hedge":
            raise ValueError(f"eta is the Hedge step; learner {self.learner!r} has none")
        if self.grad_rounds is not None and self.grad_rounds > self.rounds:
            raise ValueError(f"grad_rounds ({self.grad_rounds}) must be at most rounds ({self.rounds})")
        return self


#: Default Hedge step multiplier: ``eta = STEP_FACTOR sqrt(8 ln A_p / T)`` (see ``NoRegretBlock``).
STEP_FACTOR = 4.0


class NoRegretBlock(EquilibriumBlock):
    """Time-averaged play of batched no-regret learners; approximate (C)CE, differentiable by unrolling.

    **Options** (:class:`NoRegretOptions`): ``rounds`` (T, default 1000); ``learner``
    (``"hedge"``, ``"regret_matching"``, ``"regret_matching_plus"``); ``eta`` (Hedge
    only; default ``4 sqrt(8 ln A_p / T)`` in units of ``1 / R_p``: the worst-case
    tuning ``sqrt(8 ln A / T)`` is cautious in self-play, where payoff vectors change
    slowly, and leaves a gap of about ``sqrt(ln A / (8 T)) R_p``, 0.016 for 8 actions
    at T = 1000, against 0.003 with the default); ``optimism`` (default true:
    optimistic Hedge, predictive regret matching); ``grad_rounds``; ``max_memory_gb``
    (default 16: the size guard, see :meth:`memory_bytes`).

    Deterministic (no sampling). ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``;
    ``sigma [B, A_1..A_N]`` in the games' dtype, exactly 0 on padded joint actions;
    ``alpha`` is ``None``.
    """

    name = "no_regret"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, concepts=("cce", "ce"))

    def __init__(self, **options: Any) -> None:
        try:
            self.options = NoRegretOptions(**options)
        except ValidationError as exc:
            raise options_error(f"block {self.name!r}", exc) from None
        self.max_memory_gb = self.options.max_memory_gb

    def memory_bytes(self, size: SolveSize) -> float:
        """The transient products of a chunk of 64 rounds (``[64, B, J]``, twice) and, when the call records a
        graph, what every differentiated round keeps per game: about ``K A_max`` floats for the learners (``K``
        rows: ``N A`` external, ``N A^2`` swap learners, whose stationary distributions take ``A`` more) and,
        for three or more players, the partial contractions ``sum_p J / A_p`` (1.8 to 2.5 times the memory
        measured above)."""
        per_round = size.rows * max(size.sizes, default=1)
        if size.players > 2:
            per_round += sum(size.joints // a for a in size.sizes if a)
        rounds = (self.options.grad_rounds or self.options.rounds) if size.grad else 0
        return 8.0 * size.batch * (2 * 64 * size.joints + rounds * per_round)

    def config(self, concept: str) -> LearnerConfig:
        """The learner every player runs for ``concept`` (swap-regret copies for ``"ce"``)."""
        o = self.options
        rm = o.learner.startswith("regret_matching")
        return LearnerConfig(learner="regret_matching" if rm else "hedge", plus=o.learner == "regret_matching_plus",
                             optimism=o.optimism, eta=o.eta, swap=concept == "ce", eta_factor=STEP_FACTOR)

    def solve(self, games: Tensor, mask: Tensor, cons: Constraints, alpha0: Tensor | None) -> Equilibrium:
        concept = cons.concept.name
        sigma, _ = play(games, mask, self.config(concept), self.options.rounds, self.options.grad_rounds)
        info: dict[str, Tensor] = {}
        with torch.no_grad():
            flat = sigma.detach().reshape(games.shape[0], -1).to(torch.float64)
            if concept == "cce":
                info["regrets"] = cons.operator.regrets(flat)  # the base class reports gap and violation from them
                info["cce_gap"] = masked_row_max(info["regrets"], cons.rows)
            else:
                op = ActionDeviations(games.detach().to(torch.float64), mask)  # the CCE rows
                info["cce_gap"] = masked_row_max(op.regrets(flat), op.real)
        return Equilibrium(sigma=sigma, alpha=None, eps=cons.epsilon.per_player(games.detach(), mask),
                           concept=cons.concept, info=info)
