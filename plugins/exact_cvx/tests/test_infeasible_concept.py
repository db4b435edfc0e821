"""A concept with no eps-equilibrium in some games: both exact blocks refuse those games with one line.

The concept is a CCE with a cap on every joint action: a cap below ``1 / J`` leaves no
joint at all, and a cap below what the game's CCEs allow (prisoner's dilemma: its CCE is
mutual defection) leaves none either. The refusal is ``did_core.blocks.InfeasibleConcept``
(a ``ValueError``: the user's error, reported as one line), naming the block, the concept with its
options and the games, never a solver failure, a warning with an answer, or a loop to ``max_iter``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from did_core.blocks import InfeasibleConcept
from did_core.equilibria import Epsilon, constraints
from did_core.games import classic_game, full_mask
from did_core.testing import CappedCCE
from did_exact_cvx import EcosBlock, NewtonBlock
from did_exact_cvx.newton import solve_dual_newton

BLOCKS = {"exact_newton": NewtonBlock, "exact_cvx": EcosBlock}


class CapCCE(CappedCCE):
    """:class:`did_core.testing.CappedCCE` under this module's own name."""

    name = "test_cap"


def _games(*names: str) -> torch.Tensor:
    return torch.stack([classic_game(n).double() for n in names])


@pytest.mark.parametrize("block", BLOCKS)
def test_a_cap_below_one_over_j_is_refused_in_one_line(block):
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InfeasibleConcept) as caught:
        BLOCKS[block]()(games, concept=CapCCE(cap=0.1), eps=0.05)  # 9 joint actions: 1/9 > 0.1
    message = str(caught.value)
    assert message == (f"block {block!r}: concept 'test_cap' (cap=0.1) has no equilibrium in games 0, 1 of the batch "
                       f"of 2 (eps 0.05 relative): no joint satisfies its constraints there; raise eps or relax the "
                       f"concept")
    assert isinstance(caught.value, ValueError) and "\n" not in message and caught.value.games == [0, 1]


@pytest.mark.parametrize("block", BLOCKS)
def test_only_the_infeasible_games_of_a_batch_are_named(block):
    # Matching pennies: the uniform joint (0.25 each) meets the cap; prisoner's dilemma: every CCE is (almost)
    # mutual defection, far above it. Absolute eps, as the user may ask.
    games = _games("matching_pennies", "prisoners_dilemma", "matching_pennies")
    expected = r"has no equilibrium in game 1 of the batch of 3 \(eps 0.01 absolute\)"
    with pytest.raises(InfeasibleConcept, match=expected):
        BLOCKS[block]()(games, concept=CapCCE(cap=0.3), eps=Epsilon(0.01, relative=False))


def test_newton_certifies_infeasibility_instead_of_iterating_to_max_iter():
    """The weak-duality certificate stops an infeasible game within a few iterations; the feasible game of the same
    batch converges as if alone."""
    games = _games("prisoners_dilemma", "matching_pennies")
    cons = constraints(games, full_mask(games), CapCCE(cap=0.3), Epsilon(0.05))
    result = solve_dual_newton(cons.operator, cons.rows, cons.eps, cons.log_target, max_iter=100)
    assert result.infeasible.tolist() == [True, False]
    assert result.converged.tolist() == [False, True]
    assert int(result.iterations[0]) < 30
    np.testing.assert_allclose(result.sigma[1].numpy(), 0.25, atol=1e-9)
    # The certificate: the duals make every joint violate the weighted sum of the rows, alpha . (D sigma - eps) > 0.
    alpha = result.alpha[0]
    weighted = cons.operator.transpose(alpha.unsqueeze(0).expand(2, -1))[0] - (alpha * cons.eps[0]).sum()
    assert float(weighted.min()) > 0


@pytest.mark.parametrize("cap", [0.2802, 0.285])
def test_a_barely_feasible_cap_is_solved_not_refused(cap):
    """Chicken's CCEs meet a cap down to about 0.28006 (eps 0.05): just above it both blocks answer, and agree."""
    games = _games("chicken")
    newton = NewtonBlock()(games, concept=CapCCE(cap=cap), eps=0.05)
    ecos = EcosBlock()(games, concept=CapCCE(cap=cap), eps=0.05)
    assert bool(newton.info["converged"].all())
    assert float(newton.sigma.max()) == pytest.approx(cap, abs=1e-7)
    np.testing.assert_allclose(newton.sigma.numpy(), ecos.sigma.numpy(), atol=2e-6)
