"""Bayesian games with independent types and their agent-normal form (B-CCE and B-CE through every block).

A Bayesian game has players ``i = 1..N``, each with a finite type set ``T_i``
drawn independently from a prior ``P_i``, actions ``A_i`` and payoffs ``u_i(a, t)``
at the action profile ``a`` and the type profile ``t``. Its **agent-normal form**
(ANF) has one agent per (player, type) pair; agent ``(i, t_i)`` chooses the action
player ``i`` takes when its type is ``t_i`` and receives player ``i``'s interim
payoff, the payoff weighted by the other players' types::

    U_(i, t_i)(s) = sum_{t_-i} P_-i(t_-i) u_i(s_1(t_1), ..., s_N(t_N); t)

where ``s`` gives every agent's action. A joint ``sigma`` over the agents' pure
profiles is an eps-B-CCE (no type ``t_i`` of any player gains more than ``eps`` in
expectation over the other players' types by playing a fixed action instead,
the interim form of Hartline, Syrgkanis & Tardos 2015) exactly when it is an
eps-CCE of the ANF: agent ``(i, t_i)``'s CCE gain for switching to ``d`` is
``sum_s sigma(s) (U_(i,t_i)(d, s_-(i,t_i)) - U_(i,t_i)(s))``, which is the type's
interim gain. Likewise the eps-CE of the ANF is the eps-B-CE (a type told an
action gains at most ``eps`` by any swap). So every block solves Bayesian games
once they are converted, the eps-maximum-entropy selection included; a designer's
ex-ante value ``E_t E_sigma v(s(t), t)`` is linear in ``sigma``
(:meth:`BayesianGames.expectation`).

Layout (batch ``B``, types padded to ``T``, actions padded to ``A``):

* ``payoffs [B, N, T, ..., T, A, ..., A]`` (``N`` type axes then ``N`` action axes):
  ``payoffs[b, i, t_1..t_N, a_1..a_N] = u_i(a, t)``;
* ``prior [B, N, T]``: ``P_i(t_i)``, each player's row summing to 1 over its real types;
* ``mask [B, N, A]`` real actions (first), ``type_mask [B, N, T]`` real types (first).

The ANF has ``M = N T`` agents, agent ``i T + t`` is ``(i, t)``: games
``[B, M, A, ..., A]`` (``M`` action axes) and mask ``[B, M, A]``. A padded type's
agent has one real action (action 0) and payoff 0, so it adds nothing to the
joint: padded games and the same games cut to their real types and actions have
the same equilibria on the real agents.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BayesianGames", "MAX_ANF_JOINT", "MAX_AGENTS", "anf_joint_size", "check_anf_size"]

#: The largest agent-normal form converted: ``A^(N T)`` joint actions (8 agents of 4 actions, or 16 of 2): a
#: bound on the dense joint every block forms, not a measured limit of any block.
MAX_ANF_JOINT = 1 << 16


def anf_joint_size(players: int, types: int, actions: int) -> int:
    """The number of joint actions ``A^(N T)`` of the agent-normal form of ``players`` players with ``types`` types
    and ``actions`` actions each (padded sizes)."""
    return actions ** (players * types)


#: The most agents (players times padded types) of an agent-normal form: each is one axis of its tensors (torch
#: allows 64), and with one action each any number would pass :data:`MAX_ANF_JOINT`.
MAX_AGENTS = 32


def check_anf_size(players: int, types: int, actions: int) -> None:
    """Refuse (``ValueError``, one line) a Bayesian game whose agent-normal form has over :data:`MAX_AGENTS` agents
    or over :data:`MAX_ANF_JOINT` joint actions."""
    if players * types > MAX_AGENTS:
        raise ValueError(f"the agent-normal form of {players} player(s) with {types} type(s) each has "
                         f"{players * types} agents (one per player and type), over the bound of {MAX_AGENTS}: use "
                         f"fewer types or players")
    joint = anf_joint_size(players, types, actions)
    if joint > MAX_ANF_JOINT:
        raise ValueError(f"the agent-normal form of {players} player(s) with {types} type(s) and {actions} action(s) "
                         f"each has {actions}^{players * types} = {float(joint):.3g} joint actions, over the bound "
                         f"of {MAX_ANF_JOINT}: use fewer types or actions")


@dataclass(frozen=True)
class BayesianGames:
    """A batch of Bayesian games with independent types (layout in the module docstring).

    ``payoffs [B, N, T.., A..]``, ``prior [B, N, T]``, ``mask [B, N, A]`` (``None``: every action real),
    ``type_mask [B, N, T]`` (``None``: the types of positive prior). Differentiable in ``payoffs`` and
    ``prior``.
    """

    payoffs: Tensor
    prior: Tensor
    mask: Tensor | None = None
    type_mask: Tensor | None = None

    def __post_init__(self) -> None:
        p, prior = self.payoffs, self.prior
        if prior.dim() != 3:
            raise ValueError(f"prior must be [B, N, T], got shape {list(prior.shape)}")
        b, n, t = prior.shape
        if p.dim() != 2 + 2 * n or tuple(p.shape[:2]) != (b, n) or any(s != t for s in p.shape[2:2 + n]):
            raise ValueError(f"payoffs must be [B, N, T..T, A..A] = [{b}, {n}, {', '.join(['T'] * n)}, "
                             f"{', '.join(['A'] * n)}] with T = {t}, got shape {list(p.shape)}")
        a = p.shape[2 + n]
        if any(s != a for s in p.shape[2 + n:]):
            raise ValueError(f"every player's action axis must have the same (padded) length, got {list(p.shape)}")
        if self.mask is None:
            object.__setattr__(self, "mask", torch.ones(b, n, a, dtype=torch.bool, device=p.device))
        if self.type_mask is None:
            object.__setattr__(self, "type_mask", prior > 0)
        if tuple(self.mask.shape) != (b, n, a) or tuple(self.type_mask.shape) != (b, n, t):
            raise ValueError(f"mask must be [B, N, A] = {[b, n, a]} and type_mask [B, N, T] = {[b, n, t]}, "
                             f"got {list(self.mask.shape)} and {list(self.type_mask.shape)}")

    @property
    def players(self) -> int:
        """``N``."""
        return self.prior.shape[1]

    @property
    def types(self) -> int:
        """``T``, the padded number of types per player."""
        return self.prior.shape[2]

    @property
    def actions(self) -> int:
        """``A``, the padded number of actions per player."""
        return self.payoffs.shape[-1]

    @property
    def agents(self) -> int:
        """``M = N T``, the agents of the agent-normal form."""
        return self.players * self.types

    def _profiles(self) -> list[tuple[int, ...]]:
        """Every padded type profile ``(t_1..t_N)``."""
        return list(itertools.product(range(self.types), repeat=self.players))

    def _placed(self, values: Tensor, profile: tuple[int, ...]) -> Tensor:
        """``values [B, A..A]`` (an action profile's function, ``N`` axes) as a function of the agents' profile:
        ``[B, 1.., A, 1.., A, ..]`` with player ``j``'s axis at agent ``j T + t_j`` (broadcast over the rest)."""
        shape = [values.shape[0]] + [1] * self.agents
        for j, t in enumerate(profile):
            shape[1 + j * self.types + t] = self.actions
        return values.reshape(shape)

    def _weighted_sum(self, values: Tensor, weights: Tensor) -> Tensor:
        """``sum_t weights[:, t] values[:, t](s(t))`` over type profiles, as ``[B, A..A]`` (``M`` axes).

        ``values [B, T..T, A..A]`` (``N`` type axes, ``N`` action axes), ``weights [B, T..T]``.
        """
        out = values.new_zeros(values.shape[0], *[self.actions] * self.agents)
        for profile in self._profiles():
            w = weights[(slice(None), *profile)]
            if not bool((w != 0).any()):
                continue
            out = out + w.reshape(-1, *[1] * self.agents) * self._placed(values[(slice(None), *profile)], profile)
        return out

    def _profile_weights(self, skip: int | None = None) -> Tensor:
        """``prod_j P_j(t_j)`` over the players but ``skip`` as ``[B, T..T]`` (``N`` type axes)."""
        out = self.prior.new_ones(self.prior.shape[0], *[1] * self.players)
        for j in range(self.players):
            if j == skip:
                continue
            shape = [self.prior.shape[0]] + [1] * self.players
            shape[1 + j] = self.types
            out = out * self.prior[:, j].reshape(shape)
        return out.expand(self.prior.shape[0], *[self.types] * self.players)

    def agent_normal_form(self) -> tuple[Tensor, Tensor]:
        """The agent-normal form: games ``[B, M, A..A]`` (``M = N T`` action axes) and mask ``[B, M, A]``.

        Agent ``i T + t`` is player ``i`` of type ``t``; its payoff is the interim payoff
        (module docstring). A padded type's agent has payoff 0 and one real action.
        """
        b, n, t = self.prior.shape
        check_anf_size(n, t, self.actions)
        games = []
        for i in range(n):
            others = self._profile_weights(skip=i)
            for ti in range(t):
                select = torch.zeros_like(others)
                select[(slice(None), *[slice(None)] * i, ti)] = 1.0
                weights = others * select * self.type_mask[:, i, ti].to(others.dtype).reshape(-1, *[1] * n)
                games.append(self._weighted_sum(self.payoffs[:, i], weights))
        first = (torch.arange(self.actions, device=self.mask.device) == 0).expand(b, self.actions)
        masks = [torch.where(self.type_mask[:, i, ti].reshape(b, 1), self.mask[:, i], first)
                 for i in range(n) for ti in range(t)]
        return torch.stack(games, dim=1), torch.stack(masks, dim=1)

    def expectation(self, values: Tensor) -> Tensor:
        """The ex-ante expectation ``sum_t P(t) values(s(t), t)`` as a function of the agents' profile ``[B, A..A]``
        (``M`` axes), for ``values [B, T..T, A..A]`` (``N`` type axes, ``N`` action axes), e.g. a designer's value
        ``v(a, t)``: ``(expectation(v) * sigma).sum()`` is its expectation under an ANF joint ``sigma``."""
        weights = self._profile_weights() * self._real_profiles()
        return self._weighted_sum(values, weights)

    def _real_profiles(self) -> Tensor:
        """``[B, T..T]``: 1 where every player's type is real."""
        out = self.prior.new_ones(self.prior.shape[0], *[1] * self.players)
        for j in range(self.players):
            shape = [self.prior.shape[0]] + [1] * self.players
            shape[1 + j] = self.types
            out = out * self.type_mask[:, j].to(self.prior.dtype).reshape(shape)
        return out

    def strategies(self, sigma: Tensor) -> Tensor:
        """Each type's marginal strategy ``[B, N, T, A]`` of an ANF joint ``sigma [B, A..A]`` (``M`` axes): the
        probability that player ``i`` of type ``t`` plays each action."""
        b, m = sigma.shape[0], self.agents
        flat = [sigma.sum(dim=tuple(1 + k for k in range(m) if k != agent)) for agent in range(m)]
        return torch.stack(flat, dim=1).reshape(b, self.players, self.types, self.actions)

