"""The core's equilibrium concepts, registered like any plugin's: CE and CCE (docs/mathematics.md, section 2)."""

from __future__ import annotations

from torch import Tensor

from did_core.concepts import Concept, ConstraintOperator, DualLayout
from did_core.deviations import ActionDeviations, RecommendedDeviations
from did_core.hookspecs import hookimpl
from did_core.registry import Registry

__all__ = ["CoarseCorrelated", "Correlated", "DEFAULT_CONCEPT"]


class CoarseCorrelated(Concept):
    """eps-coarse correlated equilibrium: no player gains more than ``eps_p`` by committing to one action
    before the recommendation, ``sum_a sigma(a) (G_p[d, a_{-p}] - G_p[a]) <= eps_p`` for every ``(p, d)``."""

    name = "cce"
    description = "coarse correlated equilibrium: no gain from ignoring the recommendation (rows (p, d))"
    layout = DualLayout.ACTION

    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        return ActionDeviations(games, mask)


class Correlated(Concept):
    """eps-correlated equilibrium: no player gains more than ``eps_p`` by deviating from a recommendation,
    ``sum_{a: a_p = r} sigma(a) (G_p[d, a_{-p}] - G_p[a]) <= eps_p`` for every ``(p, r, d)``, ``r != d``."""

    name = "ce"
    description = "correlated equilibrium: no gain from deviating after a recommendation (rows (p, r, d))"
    layout = DualLayout.ACTION_PAIR

    def operator(self, games: Tensor, mask: Tensor) -> ConstraintOperator:
        return RecommendedDeviations(games, mask)


#: The concept ``did solve`` and ``did train`` use when none is named (followers as no-regret learners).
DEFAULT_CONCEPT: str = CoarseCorrelated.name


@hookimpl
def did_register_concepts(register: Registry) -> None:
    register.add(CoarseCorrelated.name, CoarseCorrelated)
    register.add(Correlated.name, Correlated)
