"""A third-party equilibrium concept for DID: a coarse correlated equilibrium in which no joint action is likelier
than ``CAP``.

A concept is a system of linear constraints ``D_k(G) . sigma <= eps_k`` on the joint:
this one is the core's CCE rows plus one row per joint action ``a``,
``sigma(a) - CAP * sum(sigma) <= 0``. Installed (``pip install -e
examples/third_party_concept``), the entry point of the group ``did`` registers the
concept ``capped_cce``: ``did solve GAME --concept capped_cce``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from did_core.concepts import Concept, ConstraintOperator, DenseOperator, StackedOperator, get_concept
from did_core.hookspecs import hookimpl
from did_core.registry import Registry

#: The largest probability of a joint action. It binds in chicken, whose CCE puts 0.289 on each off-diagonal joint
#: action; 0.28 would leave chicken without a capped CCE.
CAP = 0.285


class CappedCCE(Concept):
    """The CCE rows of every player, then ``sigma(a) <= CAP`` for every joint action ``a`` (tolerance 0)."""

    name = "capped_cce"
    description = f"coarse correlated equilibrium with P(a) <= {CAP} for every joint action"

    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        cce = get_concept("cce").operator(games, mask)  # reuse the core's CCE rows
        cap = torch.eye(cce.joints, dtype=games.dtype, device=games.device) - CAP  # row a: sigma(a) - CAP sum(sigma)
        return StackedOperator([cce, DenseOperator.extra_rows(cce, cap.expand(cce.batch, -1, -1))])


@hookimpl
def did_register_concepts(register: Registry) -> None:
    register.add(CappedCCE.name, CappedCCE)
