"""Contract tests swept over every registered block and task: the promises any plugin must keep."""

import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.games import embed, full_mask
from did_core.plugins import create, registry
from did_core.tasks import index_context

BLOCKS = registry("blocks").names()
TASKS = sorted(set(registry("samplers").names()) & set(registry("losses").names())
               & set(registry("generators").names()))


@pytest.mark.parametrize("name", BLOCKS)
def test_block_returns_distributions_with_zero_mass_on_padding(name):
    block = create("blocks", name)
    games = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    mask = full_mask(games)
    mask[0, 0, 3] = False
    mask[1, 1, 2:] = False
    games = games * (mask[:, 0, :, None] & mask[:, 1, None, :]).unsqueeze(1)
    for concept in ("ce", "cce"):
        eq = block(games, mask, concept=concept, eps=Epsilon(0.05))
        assert eq.sigma.shape == (3, 4, 4)
        assert torch.all(eq.sigma >= 0)
        assert torch.allclose(eq.sigma.flatten(1).sum(1), torch.ones(3, dtype=eq.sigma.dtype))
        assert eq.sigma[0, 3, :].abs().max() == 0 and eq.sigma[1, :, 2:].abs().max() == 0
        assert set(eq.info) >= {"gap", "violation", "entropy"}
        assert all(v.shape[0] == 3 for v in eq.info.values())


@pytest.mark.parametrize("name", BLOCKS)
def test_block_is_invariant_to_the_embedding_with_relative_eps(name):
    block = create("blocks", name)
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    a = block(games, concept="cce").sigma
    b = block(embed(games, full_mask(games)) * 3.0, concept="cce").sigma
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", BLOCKS)
def test_block_is_differentiable_in_the_payoffs(name):
    block = create("blocks", name)
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    (block(games, concept="cce").sigma[:, 0, 0].sum()).backward()
    assert games.grad is not None and torch.isfinite(games.grad).all() and games.grad.abs().sum() > 0


@pytest.mark.parametrize("task", TASKS)
def test_task_components_fit_together(task):
    sampler = create("samplers", task, **registry("samplers").get(task).factory.PROFILES.get("quick", {}))
    objective = create("losses", task)
    generator = create("generators", task, sampler)
    context = sampler.sample(4, torch.Generator().manual_seed(0))
    again = sampler.sample(4, torch.Generator().manual_seed(0))
    assert all(torch.equal(context[k], again[k]) for k in context), "sampling must be reproducible for a seed"
    assert all(v.shape[0] == 4 for v in context.values()), "every context tensor is batch-first"
    assert sampler.size_of(context).shape == (4,)
    x = generator(context)
    x0 = objective.baseline_intervention(context)
    assert x.shape == x0.shape
    games, mask = objective.induce(context, x)
    block = create("blocks", "exact_newton" if "exact_newton" in BLOCKS else "exact_cvx")
    eq = block(games.double(), mask, concept="cce", eps=0.05)
    loss, scalars = objective.loss(context, x, eq, 0.5)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    assert objective.value(context, x, eq).shape == (4,)
    # Contexts slice generically: a sub-batch goes through the same path.
    sub, x_sub = index_context(context, slice(0, 2)), x[:2].detach()
    sub_games, sub_mask = objective.induce(sub, x_sub)
    assert objective.value(sub, x_sub, block(sub_games.double(), sub_mask, concept="cce")).shape == (2,)
