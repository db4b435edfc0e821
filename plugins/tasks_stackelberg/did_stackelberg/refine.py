"""Unrolled ascent of candidate commitments against a logit model of the followers.

Why: the leader's best commitment against (nearly) best-responding followers sits
on the boundary of a follower's best-response region, at mixing ratios of
follower payoff differences (the multiple-LP method's vertices). A network with
sums, maxima and ReLUs approximates such ratios poorly: the commitment
generator's per-response candidates stopped at 0.86-0.88 of the strong
Stackelberg value however long it trained. A few ascent steps on a smooth model
of the followers, unrolled inside the generator, move each candidate towards its
region's boundary; the network learns where to start, the step sizes and the
model's precision, end to end through the exact block that trains it.

The follower models, for a leader commitment ``x`` and the induced game ``g``:

* :func:`eps_best_response` (one follower, when the generator knows the tolerance
  of the block it trains through): exactly that block's answer, the max-entropy
  eps-best response ``softmax(beta g)`` with ``beta`` set so that the expected
  regret is eps;
* :func:`logit_followers` (otherwise): ``q(a) ∝ exp(-beta * sum_i r_i(a))`` over the
  followers' real joint actions, with ``r_i(a) = max_d g_i(d, a_{-i}) - g_i(a)``
  follower ``i``'s regret at ``a`` and a learned ``beta`` (one follower: the logit
  response; several: a smoothed choice among the induced game's pure equilibria,
  the ones the strong Stackelberg reference uses).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from did_core.games import joint_mask

__all__ = ["logit_followers", "eps_best_response", "surrogate_value", "ascend"]

#: bisection steps on ``log beta`` in :func:`eps_best_response`: the bracket spans ``log 1e18`` = 41.4,
#: so 32 halvings give ``beta`` to a relative 1e-8, below float32 resolution (the generator's precision).
_BISECTION_STEPS = 32


def logit_followers(games: Tensor, mask: Tensor, precision: Tensor) -> Tensor:
    """The follower model ``q [B, K, A..A]`` for induced games ``[B, K, N, A..A]``.

    ``mask [B, N, A]`` marks real follower actions; ``precision [B]`` is ``beta``
    per context. Padded joint actions get probability 0.
    """
    n = games.shape[2]
    real = joint_mask(mask, games.shape[3:]).unsqueeze(1)  # [B, 1, A..A]
    cells = real.unsqueeze(2).expand_as(games)
    best = [games[:, :, i].masked_fill(~cells[:, :, i], -torch.inf).amax(dim=2 + i, keepdim=True)
            for i in range(n)]
    regret = sum(best[i] - games[:, :, i] for i in range(n))
    logits = (-precision.view(-1, 1, *[1] * n) * regret).masked_fill(~real, -torch.inf)
    return torch.softmax(logits.flatten(2), dim=2).view_as(logits)


def eps_best_response(games: Tensor, mask: Tensor, eps: Tensor) -> Tensor:
    """The max-entropy eps-best response ``[B, K, A]`` of one follower to each induced game ``[B, K, A]``.

    ``mask [B, A]`` marks the follower's real actions, ``eps [B, K]`` the tolerance.
    The entropy-maximising distribution with expected regret at most eps is
    ``softmax(beta g)`` with the ``beta >= 0`` that makes the expected regret eps (0
    when the uniform response is within eps); ``beta`` is found by bisection on
    ``log beta`` and held fixed in the backward pass (the answer is differentiable in
    the payoffs through the softmax).
    """
    real = mask.unsqueeze(1)
    regret = (games.masked_fill(~real, -torch.inf).amax(dim=2, keepdim=True) - games).masked_fill(~real, 0.0)
    regret = regret.detach()
    eps = eps.detach().unsqueeze(2)

    def expected_regret(log_beta: Tensor) -> Tensor:
        logits = (-log_beta.exp() * regret).masked_fill(~real, -torch.inf)
        return (torch.softmax(logits, dim=2) * regret).sum(dim=2, keepdim=True)

    scale = regret.amax(dim=2, keepdim=True).clamp_min(1e-300)
    low, high = torch.log(1e-6 / scale), torch.log(1e12 / scale)  # beta * max regret from 1e-6 to 1e12
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        above = expected_regret(middle) > eps
        low, high = torch.where(above, middle, low), torch.where(above, high, middle)
    beta = torch.where(expected_regret(torch.full_like(low, -torch.inf)) <= eps, 0.0, high.exp())
    logits = (beta * games).masked_fill(~real, -torch.inf)
    return torch.softmax(logits, dim=2)


def surrogate_value(leader: Tensor, followers: Tensor, x: Tensor, respond: Callable[[Tensor], Tensor]) -> Tensor:
    """The leader's utility ``[B, K]`` of ``K`` commitments per context against a follower model.

    ``leader [B, L, A..A]``, ``followers [B, N, L, A..A]``, ``x [B, K, L]``;
    ``respond(games [B, K, N, A..A]) -> q [B, K, A..A]`` is the model (e.g.
    :func:`logit_followers` or :func:`eps_best_response` with their other arguments bound).
    """
    n = followers.shape[1]
    weights = x.view(*x.shape, *[1] * n)  # [B, K, L, 1..1]
    games = (weights.unsqueeze(2) * followers.unsqueeze(1)).sum(dim=3)  # [B, K, N, A..A]
    q = respond(games)
    return (weights * leader.unsqueeze(1) * q.unsqueeze(2)).flatten(2).sum(dim=2)


def ascend(logits: Tensor, real: Tensor, steps: Tensor, value: Callable[[Tensor], Tensor],
           first_order: bool = False) -> Tensor:
    """Unrolled gradient ascent ``z <- z + s_k * d value(softmax z) / dz`` for each step size ``s_k``.

    ``logits [B, K, L]``, ``real [B, 1, L]`` (real leader actions), ``steps [S]``;
    ``value(x [B, K, L]) -> [B, K]``. Returns the final commitments ``[B, K, L]``.
    While gradients are enabled the graph through the steps is kept, so the step
    sizes, the starting logits and the value's parameters train through it
    (``first_order``: each step's gradient enters as a constant, so ``z_S`` moves
    one for one with the start and linearly with the steps: no second
    derivatives, no products of many Jacobians); under ``torch.no_grad``
    (evaluation) the steps run without a graph.
    """
    keep = torch.is_grad_enabled()
    z = logits
    with torch.enable_grad():
        for step in steps:
            if not keep or not z.requires_grad:
                z = z.detach().requires_grad_(True)
            x = torch.softmax(z.masked_fill(~real, -torch.inf), dim=2)
            (grad,) = torch.autograd.grad(value(x).sum(), z, create_graph=keep and not first_order)
            z = z + step * grad.masked_fill(~real, 0.0)
    if not keep:
        z = z.detach()
    return torch.softmax(z.masked_fill(~real, -torch.inf), dim=2)
