"""The bidder's relaxed choice: the eps-max-entropy CCE of the one-player game whose actions are the options.

A bidder facing a menu plays a one-player game: its actions are the null option and
the ``L`` options, its payoff the utility of each. The concept's rows for one player
say that no fixed option beats the mixed choice by more than ``eps``
(``max_a u_a - sigma . u <= eps``), and the eps-max-entropy joint is then a softmax
over utilities, ``sigma ~ exp(u / T)``, whose temperature ``T`` makes the regret exactly
``eps`` (uniform where uniform already meets it). This is RochetNet's relaxation of the
argmax, with the temperature chosen per type by the tolerance instead of fixed.

It is solved by a registered exact block (``exact_newton`` by default), so the menu is
trained through the same blocks, and the same implicit gradients, as every game of the
framework; ``eps`` is absolute, in units of value.
"""

from __future__ import annotations

from torch import Tensor

from did_core.blocks import EquilibriumBlock
from did_core.concepts import Concept
from did_core.equilibria import Epsilon

__all__ = ["RelaxedChoice"]


class RelaxedChoice:
    """The eps-ME choice of types facing their menus, through ``block`` under ``concept`` (CCE: one player's
    CE rows condition on the recommended option and give a different, non-softmax choice)."""

    def __init__(self, block: EquilibriumBlock, concept: Concept) -> None:
        self.block = block
        self.concept = concept

    def __call__(self, utility: Tensor, eps: float) -> Tensor:
        """``utility [M, L + 1]`` (column 0 the null option) -> choice probabilities ``[M, L + 1]``,
        differentiable in ``utility``; ``eps > 0`` the absolute regret each type is allowed."""
        games = utility.unsqueeze(1)  # [M, 1, L + 1]: M one-player games
        return self.block(games, concept=self.concept, eps=Epsilon(eps, relative=False)).sigma
