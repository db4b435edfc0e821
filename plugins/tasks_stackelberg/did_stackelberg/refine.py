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

__all__ = ["logit_followers", "softmax_last", "response_precision", "eps_best_response", "surrogate_value", "ascend"]

#: Newton's iterations stop when the expected regret is eps, or a step moves ``beta``, to within this many
#: units of the dtype's resolution (float32: 2e-6 relative; float64: 4e-15).
_RESOLUTION = 16
#: At most this many iterations: enough for pure bisection of the bracket (18 decades) to the float64 resolution.
_MAX_ITERATIONS = 64


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
    return softmax_last(logits.flatten(2)).view_as(logits)


def softmax_last(logits: Tensor) -> Tensor:
    """``torch.softmax(logits, -1)`` for any shape ``[..., A]``, computed along a leading axis.

    Why: on CPU torch's softmax along a short last axis (a handful of actions) is
    several times slower than along the first axis (measured: 550 us against 80 us
    on ``[134, 13, 6]``, one thread), and the commitment generator takes hundreds
    of these per training step. The result and its gradient are torch's softmax.
    """
    return torch.softmax(logits.movedim(-1, 0), dim=0).movedim(0, -1)


def _regret_moments(regret: Tensor, real: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance ``[1, ...]`` of the regret ``r [A, ...]`` under ``q ∝ exp(-beta r)`` on the real actions.

    ``real [A, ...]`` (broadcast), ``beta [1, ...]``. The weights are at most 1
    (1 at a best response, where ``r = 0``), so nothing overflows.
    """
    weight = torch.exp(-beta * regret) * real
    total = weight.sum(dim=0, keepdim=True)
    mean = (weight * regret).sum(dim=0, keepdim=True) / total
    return mean, (weight * (regret - mean).square()).sum(dim=0, keepdim=True) / total


def response_precision(regret: Tensor, real: Tensor, eps: Tensor, start: Tensor | None = None) -> Tensor:
    """The precision ``beta [...]`` of the max-entropy eps-best response ``q ∝ exp(-beta r)``.

    ``regret [A, ...] >= 0`` (each action's regret, 0 on padded actions), ``real [A, ...]``
    (broadcast: real actions), ``eps [...] > 0``; ``start [...]``: a guess (the previous
    call's answer when the games move a little). ``beta`` is 0 when the uniform
    response is within eps, else the root of ``h(beta) = log E_q r - log eps``, which
    decreases in ``beta`` with ``h' = -Var_q r / E_q r``, searched in the bracket
    ``beta * max r`` in ``[1e-6, 1e12]`` (the answer is clamped there).

    Safeguarded Newton: every iterate tightens the bracket by the sign of ``h``; a
    Newton step that leaves the bracket (or is not finite) is replaced by bisection
    of ``log beta``. Without a start, the first iterate is the Newton step from
    ``beta = 0``, which the uniform check computes anyway. ``h`` is nearly linear in
    ``beta`` at both ends (``log E r ~ log E_0 r - beta Var_0 r / E_0 r`` for small
    ``beta``; ``~ const - beta r_1`` for large ``beta``, ``r_1`` the smallest positive
    regret), so a few steps reach the dtype's resolution. Measured on the 41 calls
    of one forward pass of an untrained quick-profile commitment generator
    (float32, 64 games x 13 candidates, absolute eps 0.003), counting the uniform
    check: warm-started, 96% of the games settle within 4 evaluations of ``h``; a
    call, which waits for its slowest game (near-ties put the root on a plateau of
    ``h``), takes 7.5 on average and at most 11, against 33 for the 32-step
    bisection this replaced. No gradient flows through ``beta``.
    """
    with torch.no_grad():
        eps = eps.unsqueeze(0)
        scale = regret.amax(dim=0, keepdim=True).clamp_min(torch.finfo(regret.dtype).tiny)
        low, high = 1e-6 / scale, 1e12 / scale
        mean, variance = _regret_moments(regret, real, torch.zeros_like(scale))
        uniform = mean <= eps
        beta = mean * torch.log(mean / eps) / variance if start is None else start.unsqueeze(0).to(regret.dtype)
        beta = torch.where(beta.isnan(), high, beta).clamp(low, high)
        tolerance = _RESOLUTION * torch.finfo(regret.dtype).eps
        log_eps = eps.log()
        for _ in range(_MAX_ITERATIONS):
            mean, variance = _regret_moments(regret, real, beta)
            gap = mean.log() - log_eps
            above = gap > 0
            low, high = torch.where(above, beta, low), torch.where(above, high, beta)
            newton = beta + gap * mean / variance
            inside = (newton >= low) & (newton <= high)  # False where not finite
            settled = uniform | (gap.abs() <= tolerance) | (inside & ((newton - beta).abs() <= tolerance * beta))
            beta = torch.where(inside, newton, (low * high).sqrt())
            if bool(settled.all()):
                break
        return torch.where(uniform, 0.0, beta).squeeze(0)


def eps_best_response(games: Tensor, mask: Tensor, eps: Tensor, start: Tensor | None = None
                      ) -> tuple[Tensor, Tensor]:
    """The max-entropy eps-best response ``[B, K, A]`` of one follower to each induced game ``[B, K, A]``.

    ``mask [B, A]`` marks the follower's real actions, ``eps [B, K]`` the tolerance.
    The entropy-maximising distribution with expected regret at most eps is
    ``softmax(beta g)`` with the ``beta >= 0`` that makes the expected regret eps (0
    when the uniform response is within eps), found by :func:`response_precision`
    (``start [B, K]``: a warm start) and held fixed in the backward pass (the answer
    is differentiable in the payoffs through the softmax). Returns the response and
    ``beta [B, K]``, the warm start of the next call.
    """
    actions = games.movedim(2, 0)  # [A, B, K]: the solver and the softmax reduce over a leading axis
    real = mask.t().unsqueeze(2)  # [A, B, 1]
    top = actions.detach().masked_fill(~real, -torch.inf).amax(dim=0, keepdim=True)
    regret = (top - actions.detach()).masked_fill(~real, 0.0)
    beta = response_precision(regret, real, eps.detach(), start)
    logits = (beta * actions).masked_fill(~real, -torch.inf)
    return torch.softmax(logits, dim=0).movedim(0, 2), beta


def surrogate_value(leader: Tensor, followers: Tensor, x: Tensor, respond: Callable[[Tensor], Tensor]) -> Tensor:
    """The leader's utility ``[B, K]`` of ``K`` commitments per context against a follower model.

    ``leader [B, L, A..A]``, ``followers [B, N, L, A..A]``, ``x [B, K, L]``;
    ``respond(games [B, K, N, A..A]) -> q [B, K, A..A]`` is the model (e.g.
    :func:`logit_followers` or :func:`eps_best_response` with their other arguments bound).
    The induced games ``sum_l x_l u_i(l, .)`` and the leader's payoffs ``sum_l x_l u_L(l, .)``
    are batched matrix products over the leader's actions.
    """
    batch, k, n_leader = x.shape
    n = followers.shape[1]
    joint = followers.shape[3:]
    by_leader = followers.transpose(1, 2).reshape(batch, n_leader, -1)  # [B, L, N A..A]
    games = torch.bmm(x, by_leader).view(batch, k, n, *joint)
    q = respond(games)
    return (torch.bmm(x, leader.reshape(batch, n_leader, -1)) * q.flatten(2)).sum(dim=2)


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
            x = softmax_last(z.masked_fill(~real, -torch.inf))
            (grad,) = torch.autograd.grad(value(x).sum(), z, create_graph=keep and not first_order)
            z = z + step * grad.masked_fill(~real, 0.0)
    if not keep:
        z = z.detach()
    return softmax_last(z.masked_fill(~real, -torch.inf))
