"""The games the kit checks blocks and concepts on: padded, non-square and three-player batches, drawn until the
concept has an equilibrium in each with room to spare.

A concept need not have an eps-equilibrium in every game (a third-party concept may add rows, e.g. a cap on every
joint action), so :func:`with_equilibria` draws a family's games until a linear program (scipy's ``linprog`` on the
dense rows, independent of the blocks) finds a joint satisfying every row with slack :data:`MARGIN` in each game;
for CE and CCE that is the first draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from did_core.concepts import Concept
from did_core.equilibria import Epsilon, constraints
from did_core.games import joint_mask
from did_core.plugin_checks.checks import NotApplicable

__all__ = ["GameFamily", "FAMILIES", "PADDED", "NON_SQUARE", "THREE_PLAYER", "EPS", "MARGIN", "TRIES", "largest",
           "margins", "with_equilibria"]

#: The tolerance (relative, docs/mathematics.md, section 3.1) of every solve of the kit.
EPS = Epsilon(0.05)
#: The slack (each row scaled to max |D_kj| = 1) with which a test game's concept must have a feasible joint.
MARGIN = 1e-3
#: Draws tried before a concept is declared to have too few games with an equilibrium to be checked.
TRIES = 50


@dataclass(frozen=True)
class GameFamily:
    """Batches of standard normal games ``[B, N, *sizes]``: game ``b`` has ``real[b]`` real actions per player
    (its first ones; the rest is padding, zero payoffs and a false mask)."""

    name: str
    sizes: tuple[int, ...]
    real: tuple[tuple[int, ...], ...]

    def draw(self, seed: int) -> tuple[Tensor, Tensor]:
        """``(games [B, N, *sizes], mask [B, N, A_max])`` in float64 for ``seed``."""
        games = torch.randn(len(self.real), len(self.sizes), *self.sizes, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(seed))
        mask = torch.arange(max(self.sizes)) < torch.tensor(self.real).unsqueeze(2)
        return games * joint_mask(mask, self.sizes).unsqueeze(1), mask


PADDED = GameFamily("padded 2-player 4x4 games", (4, 4), ((3, 4), (4, 2), (4, 4)))
NON_SQUARE = GameFamily("non-square 2-player 3x5 games", (3, 5), ((3, 5), (2, 4)))
THREE_PLAYER = GameFamily("3-player 2x3x2 games", (2, 3, 2), ((2, 3, 2), (2, 2, 2)))
FAMILIES = (PADDED, NON_SQUARE, THREE_PLAYER)


def largest(values: Tensor) -> float:
    """The largest ``|entry|`` of ``values`` (0 when there is none)."""
    return float(values.abs().max()) if values.numel() else 0.0


def margins(games: Tensor, mask: Tensor, concept: Concept) -> list[float]:
    """Per game, the largest slack ``t <= 1`` with which some joint satisfies every real row of ``concept`` (each
    row scaled to max |D_kj| = 1) at tolerance :data:`EPS`: > 0 where an eps-equilibrium exists, ``-inf`` where none
    does."""
    cons = constraints(games, mask, concept, EPS)
    d, eps = cons.operator.dense().detach().numpy(), cons.eps.detach().numpy()
    rows, joint = cons.rows.numpy(), cons.joint.numpy()
    out = []
    for b in range(len(d)):
        a, e = d[b][rows[b]][:, joint[b]], eps[b][rows[b]]
        norm = np.abs(a).max(axis=1, initial=0.0)
        a, e = a[norm > 0] / norm[norm > 0, None], e[norm > 0] / norm[norm > 0]
        j = a.shape[1]
        result = linprog(np.r_[np.zeros(j), -1.0], A_ub=np.c_[a, np.ones(len(a))], b_ub=e,
                         A_eq=np.r_[np.ones(j), 0.0][None], b_eq=[1.0], bounds=[(0, None)] * j + [(None, 1.0)])
        out.append(-result.fun if result.status == 0 else -np.inf)
    return out


def with_equilibria(draw: Callable[[int], tuple[Tensor, Tensor]], concept: Concept, seed: int,
                    accept: Callable[[Tensor, Tensor], bool] = lambda games, mask: True) -> tuple[Tensor, Tensor]:
    """``draw(seed)``, else ``draw(seed + 1000)``, ...: the first games in each of which ``concept`` has an
    eps-equilibrium with slack :data:`MARGIN` and that ``accept``; :class:`NotApplicable` after :data:`TRIES`."""
    for attempt in range(TRIES):
        games, mask = draw(seed + 1000 * attempt)
        if min(margins(games, mask, concept)) >= MARGIN and accept(games, mask):
            return games, mask
    raise NotApplicable(f"concept {concept.name!r} has an eps-equilibrium in too few random games ({TRIES} draws) "
                        f"to be checked")
