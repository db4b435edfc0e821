"""The mechanism generators of the message tasks: a context in, an intervention out.

* :class:`AllocationGenerator` (message allocation): one shared MLP scores every
  (message, item) pair from the item's prior and rank, the message's index and
  the instance's size; the scores become each message's allocation ``[B, M, K]``
  by a capped Sinkhorn normalisation: every message's row sums to 1 and no item
  is given more than ``max(1, m / k)`` in total over the messages. Giving one item
  through two messages never beats giving two items (when ``m <= k``), so the cap
  loses no mechanism worth having, and it removes the trap where every message
  gives the most likely item: there the followers' eps-ME play is indifferent to
  small changes, and the gradient of every message points to that item
  (measured: a plain softmax generator ended there, 0.72 of the optimum).
  Items enter only through their prior and rank, so relabelling the items
  relabels the allocation (equivariance); messages are told apart by their
  index, since a mechanism must treat them differently.
* :class:`SPMGenerator` (muSPM): each agent's (value, probability) pairs are
  embedded and pooled (mean and max over the agent's real types, so any number
  of types is read); an MLP maps both agents' summaries to, per message profile,
  the probability of visiting agent 1 first and a price per agent, each a
  sigmoid (prices up to :func:`did_messages.spm.price_cap`, 1.2 times the
  largest value) ``[B, M, M, 3]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from did_core.tasks import Configurable, ContextSampler, Options
from did_messages.allocation import MAX_ITEMS, MAX_MESSAGES
from did_messages.spm import MAX_SPM_MESSAGES, price_cap

__all__ = ["AllocationGenerator", "SPMGenerator"]


def _mlp(inputs: int, hidden: int, layers: int, outputs: int) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` (GELU) and a linear output."""
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


class GeneratorOptions(Options):
    """Width and depth of a generator's MLP."""

    hidden: int = Field(64, ge=1, le=1024)
    layers: int = Field(3, ge=1, le=8)


class AllocationOptions(GeneratorOptions):
    """The allocation generator's options."""

    sinkhorn_steps: int = Field(20, ge=0, le=200, description="capped Sinkhorn steps (0: a plain softmax per "
                                "message)")


def capped_sinkhorn(logits: Tensor, items: Tensor, messages: Tensor, steps: int) -> Tensor:
    """Rows of ``softmax(logits) [B, M, K]`` (real items only) normalised to 1 per message, with every item's total
    over the real messages scaled down to at most ``max(1, m / k)``, alternately ``steps`` times (rows last)."""
    x = torch.softmax(logits.masked_fill(~items.unsqueeze(1), -torch.inf), dim=2)
    real = messages.unsqueeze(2).to(x.dtype)
    cap = torch.clamp(messages.sum(1) / items.sum(1), min=1).to(x.dtype).view(-1, 1, 1)
    for _ in range(steps):
        total = (x * real).sum(dim=1, keepdim=True)
        over = total > cap  # only these columns are scaled (a padded item's total is 0: no division by it)
        x = x * torch.where(over, cap / torch.where(over, total, torch.ones_like(total)), torch.ones_like(total))
        x = x / x.sum(dim=2, keepdim=True)
    return x


class AllocationGenerator(nn.Module, Configurable):
    """Context (``prior [B, K]``, ``items [B, K]``, ``messages [B, M]``) -> allocation ``x [B, M, K]``."""

    Options = AllocationOptions

    def __init__(self, sampler: ContextSampler | None = None, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        o = self.options
        self.features = 2 * MAX_ITEMS + MAX_MESSAGES + 4
        self.score = _mlp(self.features, o.hidden, o.layers, 1)

    def forward(self, context: dict[str, Tensor]) -> Tensor:
        prior, items, messages = context["prior"].float(), context["items"], context["messages"]
        b, k = prior.shape
        m = messages.shape[1]
        if k > MAX_ITEMS or m > MAX_MESSAGES:
            raise ValueError(f"at most {MAX_ITEMS} items and {MAX_MESSAGES} messages, got {k} and {m}")
        masked = prior.masked_fill(~items, -1.0)
        order = masked.argsort(dim=1, descending=True, stable=True)
        rank = order.argsort(dim=1)  # [B, K]: 0 for the most likely item
        ranked = masked.gather(1, order).clamp_min(0)  # priors sorted, [B, K]
        n_items = items.sum(dim=1, keepdim=True).float()
        n_messages = messages.sum(dim=1, keepdim=True).float()
        j = torch.arange(m, device=prior.device)
        at_j = F.pad(ranked, (0, max(0, m - k)))[:, :m]  # the j-th largest prior, [B, M]
        feats = torch.cat([
            prior.unsqueeze(1).expand(b, m, k).unsqueeze(-1),
            F.one_hot(rank, MAX_ITEMS).float().unsqueeze(1).expand(b, m, k, MAX_ITEMS),
            F.one_hot(j, MAX_MESSAGES).float().view(1, m, 1, MAX_MESSAGES).expand(b, m, k, MAX_MESSAGES),
            F.one_hot(rank, MAX_ITEMS).float().unsqueeze(1).expand(b, m, k, MAX_ITEMS)
            * at_j.view(b, m, 1, 1),
            (n_items / MAX_ITEMS).view(b, 1, 1, 1).expand(b, m, k, 1),
            (n_messages / MAX_MESSAGES).view(b, 1, 1, 1).expand(b, m, k, 1),
            at_j.view(b, m, 1, 1).expand(b, m, k, 1),
        ], dim=-1)
        return capped_sinkhorn(self.score(feats).squeeze(-1), items, messages, self.options.sinkhorn_steps)


class SPMGenerator(nn.Module, Configurable):
    """Context (``values [B, 2, T]``, ``prior [B, 2, T]``, ``types [B, 2, T]``, ``messages [B, M]``) -> per message
    profile ``[B, M, M, 3]``: P(visit agent 1 first), agent 1's price, agent 2's price."""

    Options = GeneratorOptions

    def __init__(self, sampler: ContextSampler | None = None, **options: Any) -> None:
        nn.Module.__init__(self)
        Configurable.__init__(self, **options)
        o = self.options
        self.embed = _mlp(2, o.hidden, 1, o.hidden)
        self.head = _mlp(4 * o.hidden + MAX_SPM_MESSAGES, o.hidden, o.layers,
                         MAX_SPM_MESSAGES * MAX_SPM_MESSAGES * 3)

    def forward(self, context: dict[str, Tensor]) -> Tensor:
        values, prior, types, messages = (context["values"].float(), context["prior"].float(), context["types"],
                                          context["messages"])
        b, m = values.shape[0], messages.shape[1]
        if m > MAX_SPM_MESSAGES:
            raise ValueError(f"at most {MAX_SPM_MESSAGES} messages, got {m}")
        h = self.embed(torch.stack([values, prior], dim=-1))  # [B, 2, T, H]
        real = types.unsqueeze(-1)
        mean = (h * real).sum(dim=2) / real.sum(dim=2).clamp_min(1)
        top = h.masked_fill(~real, -torch.inf).amax(dim=2)
        count = F.one_hot(messages.sum(dim=1) - 1, MAX_SPM_MESSAGES).float()
        out = self.head(torch.cat([mean.flatten(1), top.flatten(1), count], dim=1))
        out = out.view(b, MAX_SPM_MESSAGES, MAX_SPM_MESSAGES, 3)[:, :m, :m]
        return torch.cat([torch.sigmoid(out[..., :1]), price_cap(context).view(b, 1, 1, 1) * torch.sigmoid(out[..., 1:])],
                         dim=-1)
