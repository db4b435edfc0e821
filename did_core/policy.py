"""The policy block: the (entropy-regularised) optimal policy of an MDP, batched and differentiable in the rewards.

An MDP here is a fixed structure (states, actions, transitions) and a batch of rewards ``R [B, S, A]``, one per
type profile. The block returns the policy that maximises the expected total reward plus ``alpha`` times the
(causal) entropy of the policy, with its occupancy measure (the expected number of visits of every state-action,
discounted where the MDP is), and the optimal value:

* ``alpha > 0``: the unique, smooth optimum. On a finite tree (:class:`TreeMDP`) by soft backward induction,
  ``Q(s, a) = R(s, a) + V(child)``, ``V(s) = alpha * logsumexp_a(Q(s, a) / alpha)``, ``pi = softmax(Q / alpha)``,
  differentiated by autograd through the recursion. On a discounted MDP (:class:`DiscountedMDP`) by soft value
  iteration to its fixed point, differentiated implicitly (:class:`_SoftFixedPoint`: one linear solve with
  ``I - gamma * P_pi``, never through the iterations).
* ``alpha = 0``: the exact optimum, deterministic, ties (Q within :data:`TIE_TOLERANCE` of the best) going to the
  lowest action index. The occupancy is then piecewise constant in the rewards; the value is still
  differentiable (its gradient is the occupancy).

Blocks are registered through the hook ``did_register_policy_blocks`` (name -> factory ``(**options) ->
PolicyBlock``) and looked up by name at the edge with ``did_core.plugins.get_policy_block``;
:func:`solve_policy` takes a block object, by default the core's block for the MDP's kind (:func:`default_block`). The mathematics is in docs/mathematics.md ("The policy block").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import torch
from torch import Tensor

__all__ = ["TreeMDP", "DiscountedMDP", "MDP", "PolicySolution", "PolicyBlock", "BackwardInduction",
           "SoftValueIteration", "DEFAULT_BLOCKS", "default_block", "solve_policy", "TIE_TOLERANCE"]

#: Two action values closer than this count as tied (the lowest action index wins). Rewards of the tasks
#: here are O(1..100); sums of them that are equal in exact arithmetic differ by far less in float64.
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TreeMDP:
    """A finite-horizon MDP whose states form a tree (every state is reached by one path from the start).

    ``children [S, A]`` (long): the state that action ``a`` leads to from ``s``, ``-1`` when the episode ends.
    States are numbered parents first; state 0 is the start. Transitions are deterministic, as in every tree
    (a chance move would be a state with one action and several children, which this class does not model).
    ``labels``: an optional name per state (e.g. the tuple a file writes), for reading and writing mechanisms.
    """

    children: Tensor
    labels: tuple[Any, ...] | None = None
    levels: tuple[Tensor, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children = self.children
        if children.dim() != 2 or children.dtype != torch.long:
            raise ValueError(f"children must be a long tensor [S, A], got {tuple(children.shape)} {children.dtype}")
        num_states = children.shape[0]
        if num_states == 0 or children.shape[1] == 0:
            raise ValueError("an MDP needs at least one state and one action")
        if bool(((children < -1) | (children >= num_states)).any()):
            raise ValueError("children must be -1 (the episode ends) or a state index")
        targets = children[children >= 0]
        parents = torch.arange(num_states).unsqueeze(1).expand_as(children)[children >= 0]
        if bool((targets <= parents).any()) or targets.numel() != targets.unique().numel() \
                or targets.numel() != num_states - 1 or bool((targets == 0).any()):
            raise ValueError("children must form a tree rooted at state 0, every other state the child of exactly "
                             "one (state, action) numbered after its parent")
        depth = torch.zeros(num_states, dtype=torch.long)
        for s in range(num_states):  # parents come first, so one pass sets every depth
            kids = children[s][children[s] >= 0]
            depth[kids] = depth[s] + 1
        levels = tuple(torch.nonzero(depth == d).flatten() for d in range(int(depth.max()) + 1))
        object.__setattr__(self, "levels", levels)
        if self.labels is not None and len(self.labels) != num_states:
            raise ValueError(f"{len(self.labels)} labels for {num_states} states")

    @property
    def num_states(self) -> int:
        return self.children.shape[0]

    @property
    def num_actions(self) -> int:
        return self.children.shape[1]


@dataclass(frozen=True)
class DiscountedMDP:
    """An infinite-horizon discounted MDP: ``transitions [S, A, S]`` (rows sum to one), ``start [S]`` (a
    distribution), ``discount`` in ``[0, 1)``. Occupancies are discounted: ``sum_t gamma^t P(s_t = s, a_t = a)``."""

    transitions: Tensor
    start: Tensor
    discount: float
    labels: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        p, mu = self.transitions, self.start
        if p.dim() != 3 or p.shape[0] != p.shape[2] or mu.shape != (p.shape[0],):
            raise ValueError(f"transitions must be [S, A, S] and start [S], got {tuple(p.shape)}, {tuple(mu.shape)}")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount must be in [0, 1), got {self.discount}")
        if bool((p < 0).any()) or not torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype)):
            raise ValueError("every transitions[s, a] must be a probability distribution")
        if bool((mu < 0).any()) or abs(float(mu.sum()) - 1.0) > 1e-9:
            raise ValueError("start must be a probability distribution")

    @property
    def num_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def num_actions(self) -> int:
        return self.transitions.shape[1]


MDP = Union[TreeMDP, DiscountedMDP]


@dataclass
class PolicySolution:
    """The block's answer for a batch of rewards ``[B, S, A]``.

    ``policy [B, S, A]`` (rows sum to one), ``occupancy [B, S, A]`` (expected, discounted, visits; the start
    state has total one), ``q [B, S, A]`` (soft action values), ``value [B]`` (the regularised optimum from
    the start: ``sum occupancy * R`` plus ``alpha`` times the causal entropy).
    """

    policy: Tensor
    occupancy: Tensor
    q: Tensor
    value: Tensor


def _greedy(q: Tensor) -> Tensor:
    """The deterministic policy ``[..., A]`` taking the lowest-index action whose value is within
    :data:`TIE_TOLERANCE` of the best."""
    best = q >= q.max(-1, keepdim=True).values - TIE_TOLERANCE
    first = torch.argmax(best.to(torch.int8), dim=-1)  # argmax returns the first maximal index
    return torch.nn.functional.one_hot(first, q.shape[-1]).to(q.dtype)


def _backup(q: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """(value ``[...]``, policy ``[..., A]``) of action values ``q [..., A]`` at temperature ``alpha``."""
    if alpha == 0.0:
        return q.max(-1).values, _greedy(q)
    return alpha * torch.logsumexp(q / alpha, dim=-1), torch.softmax(q / alpha, dim=-1)


class PolicyBlock(ABC):
    """Maps an MDP and rewards ``[B, S, A]`` to a :class:`PolicySolution`, differentiably in the rewards."""

    #: the MDP class (or classes) the block solves.
    solves: ClassVar[type | tuple[type, ...]]

    def __call__(self, mdp: MDP, rewards: Tensor, alpha: float) -> PolicySolution:
        """Check the input, then :meth:`solve`. ``alpha >= 0`` (0: exact, ties to the lowest action)."""
        if not isinstance(mdp, self.solves):
            solves = self.solves if isinstance(self.solves, tuple) else (self.solves,)
            kinds = " or ".join(k.__name__ for k in solves)
            raise TypeError(f"{type(self).__name__} solves a {kinds}, got a {type(mdp).__name__}")
        if rewards.dim() != 3 or rewards.shape[1:] != (mdp.num_states, mdp.num_actions):
            raise ValueError(f"rewards must be [B, {mdp.num_states}, {mdp.num_actions}], got {tuple(rewards.shape)}")
        if not bool(torch.isfinite(rewards).all()):
            raise ValueError("rewards must be finite")
        if not (alpha >= 0.0 and alpha < float("inf")):
            raise ValueError(f"alpha must be finite and >= 0, got {alpha}")
        return self.solve(mdp, rewards, float(alpha))

    @abstractmethod
    def solve(self, mdp: Any, rewards: Tensor, alpha: float) -> PolicySolution:
        """The solution for checked input."""


class BackwardInduction(PolicyBlock):
    """Soft backward induction on a :class:`TreeMDP`, one tree level at a time (vectorised over the batch
    and the level's states); autograd differentiates the recursion exactly."""

    solves = TreeMDP

    def solve(self, mdp: TreeMDP, rewards: Tensor, alpha: float) -> PolicySolution:
        batch, num_states, _ = rewards.shape
        sink = num_states  # children == -1 read the value 0 from an extra slot
        children = torch.where(mdp.children >= 0, mdp.children, sink)
        values = rewards.new_zeros(batch, num_states + 1)
        q_levels, pi_levels = [], []
        for level in reversed(mdp.levels):
            q_level = rewards[:, level] + values[:, children[level]]
            v_level, pi_level = _backup(q_level, alpha)
            values = values.index_copy(1, level, v_level)
            q_levels.insert(0, q_level)
            pi_levels.insert(0, pi_level)
        reach = rewards.new_zeros(batch, num_states + 1)
        reach[:, 0] = 1.0
        visit_levels = []
        for level, pi_level in zip(mdp.levels, pi_levels):
            visits = reach[:, level, None] * pi_level
            visit_levels.append(visits)
            reach = reach.index_add(1, children[level].flatten(), visits.flatten(1))
        inverse = torch.argsort(torch.cat(mdp.levels))  # level-ordered rows back to state order
        policy, occupancy, q = (torch.cat(parts, 1)[:, inverse] for parts in (pi_levels, visit_levels, q_levels))
        return PolicySolution(policy, occupancy, q, values[:, 0])


class _SoftFixedPoint(torch.autograd.Function):
    """``V = T(V, R)`` with ``T(V, R)(s) = alpha logsumexp_a((R(s, a) + gamma P(s, a) . V) / alpha)``.

    Forward: iterate ``T`` (a gamma-contraction) to ``tol``. Backward (implicit function theorem):
    ``dV = (I - gamma P_pi)^-1 (pi * dR)``, so ``grad_R = pi * u`` with ``(I - gamma P_pi)^T u = grad_V``.
    """

    @staticmethod
    def forward(ctx: Any, rewards: Tensor, transitions: Tensor, discount: float, alpha: float, tol: float,
                max_iter: int) -> Tensor:
        values = rewards.new_zeros(rewards.shape[:2])
        for _ in range(max_iter):
            q = rewards + discount * torch.einsum("sat,bt->bsa", transitions, values)
            new = alpha * torch.logsumexp(q / alpha, dim=-1)
            done = float((new - values).abs().max()) <= tol
            values = new
            if done:
                break
        else:
            raise RuntimeError(f"soft value iteration did not reach {tol} in {max_iter} iterations")
        q = rewards + discount * torch.einsum("sat,bt->bsa", transitions, values)
        ctx.save_for_backward(torch.softmax(q / alpha, dim=-1), transitions)
        ctx.discount = discount
        return values

    @staticmethod
    def backward(ctx: Any, grad_values: Tensor) -> tuple[Tensor | None, ...]:
        policy, transitions = ctx.saved_tensors
        p_pi = torch.einsum("bsa,sat->bst", policy, transitions)
        eye = torch.eye(p_pi.shape[-1], dtype=p_pi.dtype)
        u = torch.linalg.solve((eye - ctx.discount * p_pi).transpose(1, 2), grad_values.unsqueeze(-1)).squeeze(-1)
        return policy * u.unsqueeze(-1), None, None, None, None, None


class SoftValueIteration(PolicyBlock):
    """Soft value iteration on a :class:`DiscountedMDP`, differentiated implicitly at the fixed point.

    ``alpha = 0``: policy iteration (exact evaluation by a linear solve, greedy improvement, ties to the
    lowest action) until the policy is stable, so the answer is the exact optimum.
    Options: ``tol`` (sup-norm change that ends the iteration) and ``max_iter``.
    """

    solves = DiscountedMDP

    def __init__(self, tol: float = 1e-12, max_iter: int = 100_000) -> None:
        if not (tol > 0.0 and max_iter >= 1):
            raise ValueError(f"tol must be > 0 and max_iter >= 1, got {tol}, {max_iter}")
        self.tol, self.max_iter = float(tol), int(max_iter)

    def solve(self, mdp: DiscountedMDP, rewards: Tensor, alpha: float) -> PolicySolution:
        p = mdp.transitions.to(rewards.dtype)
        if alpha == 0.0:
            policy = self._exact_policy(p, mdp.discount, rewards.detach())
        else:
            values = _SoftFixedPoint.apply(rewards, p, mdp.discount, alpha, self.tol, self.max_iter)
            q = rewards + mdp.discount * torch.einsum("sat,bt->bsa", p, values)
            policy = torch.softmax(q / alpha, dim=-1)
        occupancy = self._occupancy(p, mdp.discount, mdp.start.to(rewards.dtype), policy)
        values = self._evaluate(p, mdp.discount, rewards, policy, alpha)
        q = rewards + mdp.discount * torch.einsum("sat,bt->bsa", p, values)
        value = values @ mdp.start.to(rewards.dtype)
        return PolicySolution(policy, occupancy, q, value)

    @staticmethod
    def _occupancy(p: Tensor, discount: float, start: Tensor, policy: Tensor) -> Tensor:
        """``x(s, a) = d(s) pi(a | s)`` with ``d = (I - gamma P_pi^T)^-1 start`` ``[B, S, A]``."""
        p_pi = torch.einsum("bsa,sat->bst", policy, p)
        eye = torch.eye(p.shape[0], dtype=p.dtype)
        visits = torch.linalg.solve(eye - discount * p_pi.transpose(1, 2), start.expand(policy.shape[0], -1))
        return visits.unsqueeze(-1) * policy

    @staticmethod
    def _evaluate(p: Tensor, discount: float, rewards: Tensor, policy: Tensor, alpha: float) -> Tensor:
        """The (soft) values ``[B, S]`` of ``policy``: ``(I - gamma P_pi)^-1 (r_pi + alpha H(pi))``."""
        p_pi = torch.einsum("bsa,sat->bst", policy, p)
        gain = (policy * rewards).sum(-1)
        if alpha > 0.0:
            gain = gain - alpha * (policy * torch.log(policy.clamp_min(torch.finfo(policy.dtype).tiny))).sum(-1)
        eye = torch.eye(p.shape[0], dtype=p.dtype)
        return torch.linalg.solve(eye - discount * p_pi, gain.unsqueeze(-1)).squeeze(-1)

    def _exact_policy(self, p: Tensor, discount: float, rewards: Tensor) -> Tensor:
        """Policy iteration from the greedy policy of the rewards: exact evaluation, greedy improvement (ties
        to the lowest action), until no state changes; each round improves strictly, so it ends."""
        policy = _greedy(rewards)
        for _ in range(self.max_iter):
            values = self._evaluate(p, discount, rewards, policy, 0.0)
            improved = _greedy(rewards + discount * torch.einsum("sat,bt->bsa", p, values))
            if torch.equal(improved, policy):
                return policy
            policy = improved
        raise RuntimeError(f"policy iteration did not settle in {self.max_iter} rounds")


#: The core's block for each kind of MDP (registered as ``backward-induction`` and ``value-iteration``).
DEFAULT_BLOCKS: dict[type, type[PolicyBlock]] = {TreeMDP: BackwardInduction, DiscountedMDP: SoftValueIteration}


def default_block(mdp: MDP) -> PolicyBlock:
    """The core's block for ``mdp``'s kind, with its default options."""
    return DEFAULT_BLOCKS[type(mdp)]()


def solve_policy(mdp: MDP, rewards: Tensor, alpha: float, block: PolicyBlock | None = None) -> PolicySolution:
    """The :class:`PolicySolution` of ``rewards [B, S, A]`` on ``mdp`` by ``block`` (default:
    :func:`default_block`)."""
    return (default_block(mdp) if block is None else block)(mdp, rewards, alpha)
