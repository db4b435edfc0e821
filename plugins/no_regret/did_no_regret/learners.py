"""Batched no-regret dynamics on normal-form games, differentiable by unrolling.

Every player runs its own learner on its own payoffs, all games and players of a
batch at once. In round ``t`` player ``p`` plays the mixed strategy ``x_p^t
[B, A_max]`` (exactly 0 on padded actions) and observes the expected payoff of
each of its own actions against the others' current mixed strategies,
``u_p^t(d) = sum_{a_-p} G_p(d, a_-p) prod_{q != p} x_q^t(a_q)`` (full
information, no sampling: the dynamics are deterministic given the game). Payoffs
are divided by the player's *own-action range* ``R_p = max_{a_-p} (max_d G_p(d,
a_-p) - min_d G_p(d, a_-p))`` (a bound on the spread of ``u_p^t``): every learner
is then invariant to ``G_p -> c G_p + h(a_-p)``, ``c > 0``, the transformations
that leave the equilibria unchanged.

Learners (``learner``):

* ``"hedge"`` -- multiplicative weights, ``x^t ∝ exp(eta U^{t-1})`` with ``U`` the
  cumulative normalised payoffs (Freund & Schapire 1997, "A decision-theoretic
  generalization of on-line learning and an application to boosting", JCSS 55);
  the horizon-tuned step of the regret bound ``R_p (ln A_p / eta + eta T / 8)`` is
  ``eta = sqrt(8 ln A_p / T)`` (``LearnerConfig.eta_factor`` multiplies it);
* ``"regret_matching"`` -- ``x^t ∝ [Q^{t-1}]_+`` with ``Q`` the cumulative regrets,
  uniform when none is positive (Hart & Mas-Colell 2000, "A simple adaptive
  procedure leading to correlated equilibrium", Econometrica 68); the ``plus``
  variant clips ``Q`` at 0 every round (RM+, Tammelin et al. 2015).

``optimism`` counts the last round's payoff (regret) vector twice when choosing the
next strategy: optimistic Hedge (Rakhlin & Sridharan 2013; Syrgkanis, Agarwal, Luo
& Schapire 2015) and predictive RM+ (Farina, Kroer & Sandholm 2021).

External-regret learners drive the time average of the product distributions
``prod_p x_p^t`` to the coarse correlated equilibria. For correlated equilibria
``swap=True`` runs the Blum & Mansour (2007, "From external to internal regret",
JMLR 8) reduction: player ``p`` keeps ``A_p`` copies of the learner, copy ``i``
observing ``x_p^t(i) u_p^t``; copy ``i``'s strategy is row ``i`` of a row-stochastic
``Q_p^t [A, A]`` and the player plays its stationary distribution ``x = x Q``,
computed per game and player by GTH elimination (Grassmann, Taksar & Heyman 1985,
"Regenerative analysis and steady state distributions for Markov chains", Oper. Res. 33), differentiable. ``Q`` is
mixed with ``1e-6`` of the uniform distribution over real actions first, which
makes the stationary distribution unique (regret matching may give reducible
``Q``) and adds at most ``1e-6 R_p`` per round to the swap regret.

Shapes: ``games [B, N, A_1..A_N]``, ``mask [B, N, A_max]``, strategies ``[B, A_max]``
per player (``[B, A_max, A_max]`` for the copies of a swap learner).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from did_core.games import action_shape, joint_mask

__all__ = ["LearnerConfig", "ExpectedPayoffs", "own_action_range", "play"]

#: Weight of the uniform distribution mixed into a swap learner's ``Q`` (see the module docstring).
SWAP_MIXING = 1e-6


@dataclass(frozen=True)
class LearnerConfig:
    """How every player learns: ``learner`` (``"hedge"`` or ``"regret_matching"``), ``plus`` (RM+),
    ``optimism``, ``eta`` (Hedge step in units of ``1 / R_p``; ``None``: ``eta_factor sqrt(8 ln A_p / T)``),
    ``swap`` (Blum-Mansour copies, for CE)."""

    learner: str = "hedge"
    plus: bool = False
    optimism: bool = False
    eta: float | None = None
    swap: bool = False
    eta_factor: float = 1.0


def own_action_range(games: Tensor, joint: Tensor) -> Tensor:
    """``R_p = max_{a_-p} (max_d G_p(d, a_-p) - min_d G_p(d, a_-p))`` over real joint actions ``joint
    [B, A_1..A_N]``, ``[B, N]`` (0 for a player whose payoff does not depend on its own action)."""
    batch, n = games.shape[:2]
    out = []
    for p in range(n):
        real = joint.movedim(1 + p, 1).reshape(batch, games.shape[2 + p], -1)
        flat = games[:, p].movedim(1 + p, 1).reshape(real.shape)
        high = torch.where(real, flat, torch.full_like(flat, -math.inf)).amax(dim=1)
        low = torch.where(real, flat, torch.full_like(flat, math.inf)).amin(dim=1)
        spread = torch.where(real.any(dim=1), high - low, torch.zeros_like(high))
        out.append(spread.amax(dim=1))
    return torch.stack(out, dim=1)


class ExpectedPayoffs:
    """Every player's expected payoff of each own action against the others' mixed strategies, divided by
    its own-action range ``R_p``: ``u [B, N, A_max]`` from strategies ``x [B, N, A_max]`` (0 on padding).

    **Arguments:** ``games [B, N, A_1..A_N]`` (payoffs on padded joint actions are ignored), ``mask
    [B, N, A_max]``. Two players: one product with the block matrix ``[[0, G_1], [G_2^T, 0]] / R``
    ``[B, 2 A, 2 A]``; more: per player, the payoffs (own axis first, padded to ``A_max``) contracted
    with the others' strategies from the last axis on (intermediates ``[B, A_max, J / (A_p A_last)]``).
    """

    def __init__(self, games: Tensor, mask: Tensor) -> None:
        self.sizes = action_shape(games)
        self.batch, self.n_players = games.shape[:2]
        self.a_max = a = max(self.sizes)
        joint = joint_mask(mask, self.sizes)
        games = games * joint.unsqueeze(1).to(games.dtype)
        self.range = own_action_range(games, joint)
        safe = torch.where(self.range > 0, self.range, torch.ones_like(self.range))
        games = games / safe.reshape(*safe.shape, *([1] * len(self.sizes)))
        pad = torch.nn.functional.pad
        if self.n_players == 2:
            (a1, a2), zero = self.sizes, games.new_zeros(self.batch, a, a)
            top = torch.cat([zero, pad(games[:, 0], (0, a - a2, 0, a - a1))], dim=2)
            bottom = torch.cat([pad(games[:, 1].transpose(1, 2), (0, a - a1, 0, a - a2)), zero], dim=2)
            self.block = torch.cat([top, bottom], dim=1)
        else:
            self.own = []
            for p, size in enumerate(self.sizes):
                own = games[:, p].movedim(1 + p, 1)
                self.own.append(pad(own, (0, 0) * (self.n_players - 1) + (0, a - size)).contiguous())

    def __call__(self, x: Tensor) -> Tensor:
        # Broadcast products and sums rather than bmm: small BLAS calls open thread pools, which cost
        # milliseconds per call on a busy CPU.
        if self.n_players == 2:
            return (self.block * x.reshape(self.batch, 1, -1)).sum(dim=2).reshape(self.batch, 2, self.a_max)
        out = []
        for p, own in enumerate(self.own):
            value = own
            for q in reversed([q for q in range(self.n_players) if q != p]):  # contract the last axis
                value = (value * x[:, q, : self.sizes[q]].reshape(self.batch, *[1] * (value.dim() - 2), -1)).sum(-1)
            out.append(value)
        return torch.stack(out, dim=1)


class _Stationary:
    """The stationary distribution ``x = x Q`` of row-stochastic ``Q [B, N, A, A]`` over real actions, after
    mixing in ``SWAP_MIXING`` of the uniform, by GTH elimination (Grassmann, Taksar & Heyman 1985: state
    reduction without subtractions, stable without pivoting): ``A - 1`` batched elementwise steps, so no
    LAPACK call (whose threads cost milliseconds per call on a busy CPU) and plain autograd."""

    def __init__(self, mask: Tensor, dtype: torch.dtype) -> None:
        self.real = real = mask.to(dtype)  # [B, N, A]
        pair = real.unsqueeze(-1) * real.unsqueeze(-2)
        self.factor = (1 - SWAP_MIXING) * pair
        self.uniform = SWAP_MIXING * pair / real.sum(dim=-1)[..., None, None]
        self.padded = [1 - real[..., k : k + 1] for k in range(real.shape[-1])]  # 1 where action k is padded

    def __call__(self, rows: Tensor) -> Tensor:
        p = rows * self.factor + self.uniform  # padded actions: no transition in or out
        steps = []
        for k in range(p.shape[-1] - 1, 0, -1):  # censor the chain to states 0..k-1
            out = p[..., k, :k].clone()  # copies: saved views would keep every reduced matrix alive
            total = out.sum(dim=-1, keepdim=True) + self.padded[k]  # > 0: state 0 is real, Q is mixed
            into = p[..., :k, k].clone()
            steps.append((into, total))
            p = p[..., :k, :k] + into.unsqueeze(-1) * (out / total).unsqueeze(-2)
        x = torch.ones_like(self.real[..., :1])
        for into, total in reversed(steps):  # x_k = sum_{i<k} x_i p_ik / sum_{j<k} p_kj
            x = torch.cat([x, (x * into).sum(dim=-1, keepdim=True) / total], dim=-1)
        return x / x.sum(dim=-1, keepdim=True) * self.real


def _softmax(logits: Tensor) -> Tensor:
    """Softmax over the last axis (``-inf`` entries get exactly 0). Written out: ``torch.softmax`` opens a
    parallel region even for a handful of entries, which costs milliseconds per call on a busy CPU."""
    weights = torch.exp(logits - logits.detach().amax(dim=-1, keepdim=True))
    return weights / weights.sum(dim=-1, keepdim=True)


class _Learners:
    """Every player's learner (or swap-regret copies) over a batch: :meth:`strategies` then :meth:`update`
    once per round, starting uniform."""

    def __init__(self, payoffs: ExpectedPayoffs, mask: Tensor, cfg: LearnerConfig, rounds: int) -> None:
        self.payoffs, self.cfg = payoffs, cfg
        dtype = payoffs.range.dtype
        self.real = real = mask.to(dtype)
        if cfg.eta is None:
            eta = cfg.eta_factor * torch.sqrt(8.0 * torch.log(real.sum(dim=2)) / rounds)
        else:
            eta = torch.full(mask.shape[:2], float(cfg.eta), dtype=dtype, device=mask.device)
        bias = torch.zeros_like(real).masked_fill(~mask, -math.inf)
        uniform = real / real.sum(dim=2, keepdim=True)
        self.stationary = _Stationary(mask, dtype) if cfg.swap else None
        if cfg.swap:  # one learner per (player, copy): the copies are an axis before the actions
            self.eta, self.bias, self.real_s = eta[..., None, None], bias.unsqueeze(2), real.unsqueeze(2)
            self.uniform, self.state = uniform.unsqueeze(2), real.new_zeros(*mask.shape, mask.shape[-1])
        else:
            self.eta, self.bias, self.real_s, self.uniform = eta[..., None], bias, real, uniform
            self.state = torch.zeros_like(real)
        self.last = torch.zeros_like(self.state)
        self.rows = self.state

    def strategies(self) -> Tensor:
        """This round's mixed strategies ``x [B, N, A_max]``."""
        cfg = self.cfg
        score = self.state + self.last if cfg.optimism else self.state
        if cfg.learner == "hedge":
            x = _softmax(score * self.eta + self.bias)
        else:
            weights = score.clamp_min(0.0) * self.real_s
            total = weights.sum(dim=-1, keepdim=True)
            x = torch.where(total > 0, weights / torch.where(total > 0, total, torch.ones_like(total)), self.uniform)
        self.rows = x
        return x if self.stationary is None else self.stationary(x)

    def update(self, x: Tensor) -> None:
        """Observe the round in which ``x`` (from :meth:`strategies`) was played."""
        u = self.payoffs(x)  # [B, N, A]
        hedge = self.cfg.learner == "hedge"
        if self.stationary is None:
            step = u if hedge else (u - (x * u).sum(dim=-1, keepdim=True)) * self.real
        elif hedge:  # copy i observes x(i) u
            step = x.unsqueeze(-1) * u.unsqueeze(-2)
        else:  # copy i's regrets: x(i) (u - q_i . u)
            played = (self.rows * u.unsqueeze(-2)).sum(-1, keepdim=True)
            step = x.unsqueeze(-1) * (u.unsqueeze(-2) - played) * self.real_s
        self.state = self.state + step
        if self.cfg.plus:
            self.state = self.state.clamp_min(0.0)
        self.last = step


def play(games: Tensor, mask: Tensor, cfg: LearnerConfig, rounds: int, grad_rounds: int | None = None,
         chunk: int = 64) -> tuple[Tensor, Tensor]:
    """Run the dynamics for ``rounds`` rounds; return the time-averaged joint play ``[B, A_1..A_N]``
    (``(1 / T) sum_t prod_p x_p^t``, exactly 0 on padded joint actions) and ``R_p [B, N]``.

    The average is a running sum, accumulated every ``chunk`` rounds from the stacked strategies (a
    transient ``[chunk, B, A_1..A_N]`` product). With ``grad_rounds = K`` the first ``T - K`` rounds run
    without autograd: their strategies and the learners' state after them are constants (truncated
    backpropagation); ``None``: every round is differentiated.
    """
    payoffs = ExpectedPayoffs(games, mask)
    sizes, n = payoffs.sizes, payoffs.n_players
    total = games.new_zeros(games.shape[0], *sizes)
    buffer: list[Tensor] = []
    no_grad_until = rounds - grad_rounds if grad_rounds is not None else 0

    def flush() -> Tensor:
        stacked = torch.stack(buffer)  # [t, B, N, A_max]
        buffer.clear()
        joint = None  # the product distributions of the chunk, [t, B, A_1..A_N] (broadcast, not BLAS)
        for p in range(n):
            view = [stacked.shape[0], stacked.shape[1]] + [1] * n
            view[2 + p] = sizes[p]
            factor = stacked[:, :, p, : sizes[p]].reshape(view)
            joint = factor if joint is None else joint * factor
        return total + joint.sum(dim=0)

    learners = _Learners(payoffs, mask, cfg, rounds)
    grad = torch.is_grad_enabled()
    for t in range(rounds):
        if t == no_grad_until and buffer:
            total = flush()
        with torch.set_grad_enabled(grad and t >= no_grad_until):
            x = learners.strategies()
            buffer.append(x)
            if t + 1 < rounds:
                learners.update(x)
        if len(buffer) == chunk:
            total = flush()
    if buffer:
        total = flush()
    return total / rounds, payoffs.range
