"""Generators of the two tasks: an equivariant commitment network and a payment network.

* :class:`CommitmentGenerator` reads the game of leader and followers as players
  (:meth:`CommitmentSampler.payoff_features`, ``[B, 3, 1 + N, L, A..A]``), runs
  the core's P2P stack (:class:`did_core.nn.generators.P2PStack`) with a
  two-channel head and reads the head on the leader's slice ``[B, 2, L, A..A]``.
  ``head="responses"`` (default) follows the multiple-LP method: per follower
  (joint) response ``a`` a candidate commitment ``softmax_l(h_0(l, a))`` and a
  score ``mean_l h_1(l, a)``. With ``refine_steps = 0`` the commitment is the
  candidates' mixture weighted by the softmax of the scores. With
  ``refine_steps > 0`` (default 40) the ``refine_candidates`` best-scored
  candidates, and (``refine_pure_starts``) one near-pure commitment per leader
  action and the uniform one, each take that many ascent steps on the leader's
  utility against a model of the followers (:mod:`did_stackelberg.refine`): with
  one follower and the run's tolerance bound (:meth:`CommitmentGenerator.bind_tolerance`,
  ``exact_follower``), the max-entropy eps-best response the block itself
  computes; otherwise a logit model with a learned precision. The result is their
  mixture by the softmax of score plus a learned multiple (initially 50 per unit
  of the leader's payoff scale) of the model's utility: a soft choice of the best.
  Step sizes and precisions learn at ``refine_rate`` times the trainer's rate.
  Measured at absolute eps 0.003 on 512 held-out games, utility / strong
  Stackelberg value: 0.862 without refinement; 0.846 with 8 unrolled steps mixed
  at a multiple near 1 (a mixture of commitments from different response regions
  is worse than either); 0.900 with the multiple at 50; 0.917-0.918 with learned
  scalars; 0.945 adding the fixed starts; 0.946-0.951 with 40 steps and larger
  batches (logit model); the plugin README has the rest. With more than
  ``refine_candidates`` follower responses the score decides which candidates
  are refined.
  ``head="pool"``: one logit per leader action, the masked mean of ``h_0`` plus
  the masked max of ``h_1`` over the followers' joint actions (no refinement).
  Padded actions get ``-inf`` before every softmax. Permuting the leader's actions
  permutes ``x``; permuting a follower's actions (or the followers) leaves it
  unchanged; one network serves every size. Max pooling is the default (best
  responses are maxima; measured on the quick profile at absolute eps 0.003, 256
  held-out games: SSE ratio 0.857 with max against 0.829 with meanvar pooling).
* :class:`PaymentGenerator` is the core's :class:`did_core.nn.generators.LineGaugedGenerator`:
  promised payments ``x >= 0`` per player and joint action, every line of a
  player's own actions with a cell that pays nothing (with a plain ``softplus``
  the payment term collapsed every payment below 1e-19 within 20 quick-profile steps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from did_core.equilibria import Epsilon
from did_core.games import joint_mask
from did_core.nn import masked_max, masked_mean
from did_core.nn.generators import LineGaugedGenerator, P2PStack
from did_core.tasks import Configurable, Context, ContextSampler
from did_stackelberg.commitment import payoff_scale
from did_stackelberg.design_commitment import PURE_LOGIT
from did_stackelberg.refine import ascend, eps_best_response, logit_followers, surrogate_value

__all__ = ["CommitmentGenerator", "PaymentGenerator"]


class CommitmentGenerator(P2PStack):
    """P2P stack -> two channels on the leader's slice -> a commitment ``[B, L]`` (module docstring)."""

    #: The quick profile's network: one P2P layer of width 16 and 20 ascent steps cost 4.6x the block per
    #: training step (the defaults: 17.4x) and reached 0.956 of the strong Stackelberg value on 512 held-out
    #: games at absolute eps 0.003 (the defaults: 0.954); the plugin README has the comparison.
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"quick": {"width": 16, "depth": 1, "refine_steps": 20}}

    class Options(P2PStack.Options):
        aggregation: Literal["meanvar", "mean", "max"] = Field("max", description="max: best responses are maxima")
        output_scale: float = Field(1.0, gt=0, description="multiplies the head's output before the softmaxes")
        head: Literal["responses", "pool"] = Field("responses", description="responses: one candidate "
                                                   "commitment per follower response, mixed; pool: pooled logits")
        refine_steps: int = Field(40, ge=0, le=100, description="unrolled ascent steps on each refined candidate "
                                  "(responses head)")
        refine_candidates: int = Field(8, ge=1, description="how many of the best-scored candidates are refined")
        refine_precision: float = Field(30.0, gt=0, description="initial precision of the followers' logit model, "
                                        "per unit of their payoff scale")
        refine_step: float = Field(0.5, gt=0, description="initial size of every ascent step (logits per unit "
                                   "of the leader's payoff scale)")
        refine_gradient: Literal["unrolled", "first_order"] = Field(
            "first_order", description="unrolled: differentiate through every ascent step; first_order: treat each "
            "step's gradient as a constant (cheaper, stable for many steps)")
        refine_rate: float = Field(5.0, ge=0, description="how much faster than the network's weights the "
                                   "refinement's scalars (precisions, step sizes) learn; 0 keeps them fixed")
        exact_follower: bool = Field(True, description="with one follower and a known tolerance, refine "
                                     "against the block's own answer, the max-entropy eps-best response")
        refine_pure_starts: bool = Field(True, description="also refine, from fixed starts, one near-pure "
                                         "commitment per leader action and the uniform one")
        refine_selection: float = Field(50.0, gt=0, description="initial precision of the choice among refined "
                                        "candidates, per unit of the leader's payoff scale")

    def __init__(self, sampler: ContextSampler, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        self.build(sampler, 2)
        o = self.options
        if o.head == "responses" and o.refine_steps:
            # log-scale offsets from the initial values, multiplied by refine_rate when used: the trainer's one
            # learning rate, sized for the network's weights, would move these few scalars too slowly.
            self.refine_offsets = nn.Parameter(torch.zeros(2 + o.refine_steps))
        self.tolerance: Epsilon | None = None

    def bind_tolerance(self, eps: Epsilon) -> None:
        """The tolerance of the block the generator trains through (the core calls this when it builds a run).

        With one follower and ``exact_follower``, the refinement's follower model is then
        that block's answer itself, the max-entropy eps-best response; without a tolerance
        (or with several followers) it is the logit model with a learned precision.
        """
        self.tolerance = eps

    def forward(self, context: Context) -> Tensor:
        head, _ = self.trunk(context)
        leader = self.options.output_scale * head[:, :, 0]  # [B, 2, L, A..A]
        sizes = tuple(leader.shape[2:])
        real_leader = context["leader_mask"][:, : sizes[0]]
        follower = joint_mask(context["mask"], sizes[1:])  # [B, A..A]
        axes = tuple(range(3, leader.dim()))
        if self.options.head == "pool":
            score = masked_mean(leader[:, :1], follower[:, None, None], axes) + masked_max(
                leader[:, 1:], follower[:, None, None], axes)
            score = score.reshape(score.shape[0], -1).masked_fill(~real_leader, float("-inf"))
            return torch.softmax(score, dim=1)
        # "responses": one candidate per follower (joint) response: logits [B, R, L], scores [B, R].
        logits = leader[:, 0].flatten(2).transpose(1, 2)
        view = (-1, sizes[0], *[1] * len(sizes[1:]))
        score = masked_mean(leader[:, 1], real_leader.view(view), (1,)).flatten(1)
        score = score.masked_fill(~follower.flatten(1), float("-inf"))
        real = real_leader.unsqueeze(1)  # [B, 1, L]
        if not self.options.refine_steps:
            candidates = torch.softmax(logits.masked_fill(~real, float("-inf")), dim=2)
            return (torch.softmax(score, dim=1).unsqueeze(2) * candidates).sum(dim=1)
        return self._refined(context, logits, score, real)

    def refine_parameters(self) -> tuple[Tensor, Tensor, Tensor]:
        """The learned precision of the followers' model, precision of the choice and ascent steps ``[S]``."""
        o = self.options
        initial = torch.tensor([o.refine_precision, o.refine_selection] + [o.refine_step] * o.refine_steps)
        values = initial.to(self.refine_offsets) * (o.refine_rate * self.refine_offsets).exp()
        return values[0], values[1], values[2:]

    def _refined(self, context: Context, logits: Tensor, score: Tensor, real: Tensor) -> Tensor:
        """Refine the best-scored candidates ``logits [B, R, L]`` and mix them (module docstring)."""
        k = min(self.options.refine_candidates, score.shape[1])
        top, index = score.topk(k, dim=1)
        start = logits.gather(1, index.unsqueeze(2).expand(-1, -1, logits.shape[2]))  # [B, k, L]
        if self.options.refine_pure_starts:
            batch, n_leader = real.shape[0], real.shape[2]
            pure = PURE_LOGIT * torch.eye(n_leader, dtype=start.dtype, device=start.device)
            start = torch.cat([start, pure.expand(batch, -1, -1), start.new_zeros(batch, 1, n_leader)], dim=1)
            fixed = torch.zeros(batch, n_leader + 1, dtype=top.dtype, device=top.device)
            fixed[:, :n_leader] = fixed[:, :n_leader].masked_fill(~real[:, 0], float("-inf"))
            top = torch.cat([top, fixed], dim=1)
        scale = payoff_scale(context).to(logits.dtype)  # [B, 1 + N]
        precision, selection, steps = self.refine_parameters()
        respond = self._follower_model(context["mask"], precision / scale[:, 1:].mean(dim=1))
        leader, followers = context["leader"].to(logits.dtype), context["followers"].to(logits.dtype)

        def value(x: Tensor) -> Tensor:
            return surrogate_value(leader, followers, x, respond) / scale[:, :1]

        x = ascend(start, real, steps, value, first_order=self.options.refine_gradient == "first_order")
        weights = torch.softmax(top + selection * value(x), dim=1)
        return (weights.unsqueeze(2) * x).sum(dim=1)


    def _follower_model(self, mask: Tensor, precision: Tensor) -> Callable[[Tensor], Tensor]:
        """``games [B, K, N, A..A] -> q [B, K, A..A]``: the refinement's model of the followers (see
        :meth:`bind_tolerance`); ``mask [B, N, A]``, ``precision [B]`` of the logit model. The exact
        follower's precision search starts from the previous call's answer (one model serves one ascent)."""
        if self.tolerance is None or not self.options.exact_follower or mask.shape[1] != 1:
            return lambda games: logit_followers(games, mask, precision)
        tolerance = self.tolerance
        warm: Tensor | None = None  # the previous call's beta [B, K]: the ascent moves each game a little per step

        def respond(games: Tensor) -> Tensor:
            nonlocal warm
            batch, k = games.shape[:2]
            flat = games.reshape(batch * k, *games.shape[2:])  # one-player games [B K, 1, A]
            eps = tolerance.per_player(flat, mask.repeat_interleave(k, dim=0)).view(batch, k)
            q, warm = eps_best_response(games[:, :, 0], mask[:, 0], eps, start=warm)
            return q

        return respond


class PaymentGenerator(LineGaugedGenerator):
    """``context -> x [B, N, A..A] >= 0``: promised payments, gauge-fixed (see the module docstring)."""
