"""The commitment task: sampler shapes, masks and reproducibility, the induced game and the leader's
utility against hand computations, the generator's symmetries, the SSE stored in the context."""

from __future__ import annotations

import pytest
import torch

from did_core.grouping import size_groups
from did_core.plugins import create, get_concept
from did_core.tasks import index_context
from did_stackelberg import CommitmentGenerator, CommitmentObjective, CommitmentSampler
from did_stackelberg.commitment import feasible_strategy, induced_games, leader_utility
from did_stackelberg.reference import strong_stackelberg


def _double(context):
    return {k: (v.double() if v.is_floating_point() else v) for k, v in context.items()}


def _sample(batch: int = 6, seed: int = 0, **options):
    return CommitmentSampler(**{"min_actions": 2, "max_actions": 4, **options}).sample(
        batch, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("followers", [1, 2])
def test_sampler_shapes_masks_and_padding(followers):
    context = _sample(8, n_followers=followers)
    a, n = 4, followers
    assert context["leader"].shape == (8, a, *[a] * n) and context["followers"].shape == (8, n, a, *[a] * n)
    assert context["leader_mask"].shape == (8, a) and context["mask"].shape == (8, n, a)
    assert context["sse"].shape == (8,) and torch.isfinite(context["sse"]).all()
    for b in range(8):
        n_l = int(context["leader_mask"][b].sum())
        assert context["leader_mask"][b, :n_l].all() and n_l >= 2
        assert context["leader"][b, n_l:].abs().sum() == 0 and context["followers"][b, :, n_l:].abs().sum() == 0
        for i, count in enumerate(context["mask"][b].sum(dim=1).tolist()):
            assert context["leader"][b].movedim(1 + i, 0)[count:].abs().sum() == 0


def test_sampler_is_reproducible_and_reference_is_optional():
    one, two = _sample(seed=3), _sample(seed=3)
    assert set(one) == set(two) and all(torch.equal(one[k], two[k]) for k in one)
    without = _sample(seed=3, reference=False)
    assert "sse" not in without and all(torch.equal(without[k], one[k]) for k in without)
    assert not torch.equal(_sample(seed=4)["leader"], one["leader"])
    square = _sample(16, square=True)
    assert torch.equal(square["leader_mask"].sum(1), square["mask"][:, 0].sum(1))


def test_sse_in_the_context_is_the_multiple_lp_value():
    context = _sample(4, seed=1)
    for b in range(4):
        n_l, n_f = int(context["leader_mask"][b].sum()), int(context["mask"][b, 0].sum())
        sse = strong_stackelberg(context["leader"][b, :n_l, :n_f].numpy(),
                                 context["followers"][b, :, :n_l, :n_f].numpy())
        assert float(context["sse"][b]) == pytest.approx(sse.value)


def test_induced_game_and_leader_utility_by_hand():
    context = _sample(3, seed=2, n_followers=2, reference=False)
    x = feasible_strategy(context, torch.rand(3, 4, generator=torch.Generator().manual_seed(0)).double())
    games = induced_games(context, x)
    sigma = torch.rand(3, 4, 4, dtype=torch.float64)
    sigma = sigma * (context["mask"][:, 0, :, None] & context["mask"][:, 1, None, :])
    sigma = sigma / sigma.sum(dim=(1, 2), keepdim=True)
    for b in range(3):
        for i in range(2):
            for a1 in range(4):
                for a2 in range(4):
                    expected = sum(float(x[b, l]) * float(context["followers"][b, i, l, a1, a2]) for l in range(4))
                    assert float(games[b, i, a1, a2]) == pytest.approx(expected)
        expected = float(torch.einsum("l,lab,ab->", x[b], context["leader"][b].double(), sigma[b]))
        assert float(leader_utility(context, x, sigma)[b]) == pytest.approx(expected)


def test_feasible_strategy_projects_onto_the_real_simplex():
    context = _sample(2, reference=False)
    context["leader_mask"][:] = torch.tensor([True, True, True, False])
    x = feasible_strategy(context, torch.tensor([[-1.0, 1.0, 3.0, 5.0], [0.0, -2.0, 0.0, 7.0]]))
    assert torch.allclose(x, torch.tensor([[0.0, 0.25, 0.75, 0.0], [1 / 3, 1 / 3, 1 / 3, 0.0]]))


def test_objective_baseline_value_and_loss():
    context = _sample(5, reference=False)
    objective = CommitmentObjective()
    x0 = objective.baseline_intervention(context)
    assert torch.allclose(x0.sum(dim=1), torch.ones(5)) and (x0[~context["leader_mask"]] == 0).all()
    games, mask = objective.induce(context, x0)
    eq = create("blocks", "exact_newton")(games.double(), mask, concept=get_concept("cce"), eps=0.05)
    value = objective.value(context, x0, eq)
    loss, scalars = objective.loss(context, x0, eq, 0.5)
    assert float(loss) == pytest.approx(-float(value.mean()))
    assert scalars["leader_utility"] == pytest.approx(float(value.mean()))
    assert torch.equal(objective.intervention_mask(context), context["leader_mask"])


@pytest.mark.parametrize("head", ["responses", "pool"])
def test_generator_outputs_distributions_and_respects_symmetries(head):
    torch.manual_seed(0)
    sampler = CommitmentSampler(min_actions=3, max_actions=4, reference=False)
    generator = CommitmentGenerator(sampler, width=16, depth=2, head=head).double()
    context = _double(sampler.sample(6, torch.Generator().manual_seed(5)))
    x = generator(context)
    assert torch.allclose(x.sum(dim=1), torch.ones(6, dtype=torch.float64)) and (x[~context["leader_mask"]] == 0).all()
    # a full 4 x 4 game: permuting the leader's actions permutes x; permuting the follower's leaves it
    full = {k: v[:1].clone() for k, v in context.items()}
    full["leader_mask"][:] = True
    full["mask"][:] = True
    base = generator(full)
    leader_perm, follower_perm = torch.tensor([2, 0, 3, 1]), torch.tensor([3, 1, 0, 2])
    moved = dict(full, leader=full["leader"][:, leader_perm], followers=full["followers"][:, :, leader_perm])
    assert torch.allclose(generator(moved), base[:, leader_perm], atol=1e-10)
    moved = dict(full, leader=full["leader"][:, :, follower_perm], followers=full["followers"][..., follower_perm])
    assert torch.allclose(generator(moved), base, atol=1e-10)


def test_size_groups_crop_to_the_same_answer():
    """Cropping a size group (what the trainer does) changes no real output of the generator."""
    sampler = CommitmentSampler(min_actions=2, max_actions=5, reference=False)
    generator = CommitmentGenerator(sampler, width=8, depth=1).double()
    context = _double(sampler.sample(12, torch.Generator().manual_seed(6)))
    whole = generator(context)
    extents = sampler.extents(context)
    assert extents.shape == (12, 2) and sampler.size_of(context).shape == (12,)
    groups = size_groups(extents, 4)
    assert len(groups) > 1 and sum(len(m) for m, _ in groups) == 12
    for members, lengths in groups:
        group = sampler.crop(index_context(context, members), lengths)
        assert group["leader"].shape[1:] == (lengths[0], lengths[1])
        assert torch.allclose(generator(group), whole[members, : lengths[0]], atol=1e-10)


def test_two_followers_train_end_to_end():
    """Several followers: the induced two-player game goes through the block and gradients reach the generator."""
    sampler = CommitmentSampler(n_followers=2, min_actions=2, max_actions=3, reference=False)
    generator = CommitmentGenerator(sampler, width=8, depth=1)
    context = sampler.sample(4, torch.Generator().manual_seed(8))
    x = generator(context)
    assert x.shape == (4, 3) and torch.allclose(x.sum(dim=1), torch.ones(4))
    objective = CommitmentObjective()
    games, mask = objective.induce(context, x)
    assert games.shape == (4, 2, 3, 3)
    eq = create("blocks", "exact_newton")(games.double(), mask, concept=get_concept("cce"), eps=0.05)
    loss, _ = objective.loss(context, x, eq, 0.0)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
