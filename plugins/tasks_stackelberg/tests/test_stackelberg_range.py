"""Commitment and matrix design over the eps-equilibrium set (docs/mathematics.md, section 8): both values are
linear in the followers' joint; the maximum-entropy value lies in the range."""

from __future__ import annotations

import pytest
import torch

from did_core.testing import assert_linear_value
from did_core.plugins import create, get_concept
from did_core.registry import UnknownNameError
from did_stackelberg.commitment import CommitmentObjective, CommitmentSampler
from did_stackelberg.matrix_design import MatrixDesignObjective, MatrixDesignSampler


def exact_block():
    try:
        return create("blocks", "exact_newton")
    except UnknownNameError:
        pytest.skip("no exact block installed (did-plugins-exact-cvx)")


def _check(objective, context, x, concept):
    assert_linear_value(objective, context, x, exact_block(), get_concept(concept))


@pytest.mark.parametrize("followers", [1, 2])
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_the_leaders_utility_is_linear_in_the_followers_joint(followers, concept):
    sampler = CommitmentSampler(n_followers=followers, min_actions=2, max_actions=4, reference=False)
    context = sampler.sample(6, torch.Generator().manual_seed(followers))
    # not a distribution, some entries negative: the projection applies to the value and the linear form alike
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    _check(CommitmentObjective(), context, x, concept)


@pytest.mark.parametrize("goal", ["target", "welfare", "mixed"])
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_matrix_design_value_is_linear_in_the_joint(goal, concept):
    context = MatrixDesignSampler(goal=goal, min_actions=2, max_actions=3).sample(
        6, torch.Generator().manual_seed(3))
    x = torch.randn(context["games"].shape, generator=torch.Generator().manual_seed(1))
    _check(MatrixDesignObjective(lam=0.7), context, x, concept)
