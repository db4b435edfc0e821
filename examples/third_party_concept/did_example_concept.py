"""A third-party equilibrium concept for DID: a coarse correlated equilibrium in which no joint action is likelier
than ``cap`` (an option, default ``CAP``).

A concept is a system of linear constraints ``D_k(G) . sigma <= eps_k`` on the joint:
this one is the core's CCE rows plus one row per joint action ``a``,
``sigma(a) - cap * sum(sigma) <= 0``. Installed (``pip install -e
examples/third_party_concept``), the entry point of the group ``did`` registers the
concept ``capped_cce``: ``did solve GAME --concept capped_cce``, or with another cap
``did train --concept capped_cce --concept-options '{cap: 0.3}'``.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from did_core.concepts import Concept, ConstraintOperator, DenseOperator, StackedOperator
from did_core.default_plugins.concepts import CoarseCorrelated
from did_core.hookspecs import hookimpl
from did_core.options import Options
from did_core.registry import Registry

#: The default largest probability of a joint action. It binds in chicken, whose CCE puts 0.289 on each off-diagonal
#: joint action; 0.28 would leave chicken without a capped CCE.
CAP = 0.285


class CappedCCE(Concept):
    """The CCE rows of every player, then ``sigma(a) <= cap`` for every joint action ``a`` (tolerance 0).

    A cap below ``1 / J`` (``J`` real joint actions) leaves no joint at all: the exact blocks refuse such
    games with one line (``did_core.blocks.InfeasibleConcept``)."""

    name = "capped_cce"
    description = "coarse correlated equilibrium with P(a) <= cap for every joint action"

    class Options(Options):
        cap: float = Field(CAP, gt=0, le=1, description="the largest probability of a joint action")

    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        cce = CoarseCorrelated().operator(games, mask)  # reuse the core's CCE rows
        # row a: sigma(a) - cap sum(sigma)
        cap = torch.eye(cce.joints, dtype=games.dtype, device=games.device) - self.options.cap
        return StackedOperator([cce, DenseOperator.extra_rows(cce, cap.expand(cce.batch, -1, -1))])


@hookimpl
def did_register_concepts(register: Registry) -> None:
    register.add(CappedCCE.name, CappedCCE)
