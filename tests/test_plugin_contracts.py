"""Contract tests swept over every registered block, concept and task: the promises any plugin must keep."""

import pytest
import torch

import toys
from did_core.blocks import SolveSize, SolveTooLarge, capabilities_of
from did_core.components import get_task
from did_core.equilibria import Epsilon, constraints
from did_core.games import embed, full_mask
from did_core.plugins import create, exact_block_for, registry
from did_core.tasks import index_context

with toys.toy_plugins():  # the sweep covers the toys (tests/toys.py) beside whatever is installed
    CONCEPTS = registry("concepts").names()
    PAIRS = [(block.name, concept) for block in registry("blocks") for concept in CONCEPTS
             if capabilities_of(block.value).supports(concept)]
    TASKS = registry("tasks").names()


def _padded_games() -> tuple[torch.Tensor, torch.Tensor]:
    games = torch.randn(3, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mask = full_mask(games)
    mask[0, 0, 3] = False
    mask[1, 1, 2:] = False
    return games * (mask[:, 0, :, None] & mask[:, 1, None, :]).unsqueeze(1), mask


@pytest.mark.parametrize("name, concept", PAIRS)
def test_block_returns_distributions_with_zero_mass_on_padding(name, concept):
    block = create("blocks", name)
    games, mask = _padded_games()
    eq = block(games, mask, concept=concept, eps=Epsilon(0.05))
    assert eq.sigma.shape == (3, 4, 4) and eq.concept == concept
    assert torch.all(eq.sigma >= 0)
    assert torch.allclose(eq.sigma.flatten(1).sum(1), torch.ones(3, dtype=eq.sigma.dtype))
    assert eq.sigma[0, 3, :].abs().max() == 0 and eq.sigma[1, :, 2:].abs().max() == 0
    assert set(eq.info) >= {"gap", "violation", "entropy"}
    assert all(v.shape[0] == 3 for v in eq.info.values())
    if eq.alpha is not None:
        assert eq.alpha.shape == (3, *registry("concepts").get(concept).value().dual_shape(2, 4))
    if capabilities_of(registry("blocks").get(name).value).exact:
        # An exact block's answer is feasible: every constraint row within its tolerance.
        cons = constraints(games, mask, concept, Epsilon(0.05))
        slack = cons.operator.regrets(eq.sigma.reshape(3, -1).double()) - cons.eps
        assert float(slack[cons.rows].max()) <= 1e-7


@pytest.mark.parametrize("name, concept", PAIRS)
def test_block_is_invariant_to_the_embedding_with_relative_eps(name, concept):
    block = create("blocks", name)
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = block(games, concept=concept).sigma
    b = block(embed(games, full_mask(games)) * 3.0, concept=concept).sigma
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name, concept", PAIRS)
def test_block_passes_a_double_precision_gradcheck(name, concept):
    """The gradient a block back-propagates equals central finite differences of its answer.

    Step 1e-4: an interior-point solver's answer is accurate to about 1e-10, which
    smaller steps turn into finite-difference noise above the tolerance."""
    block = create("blocks", name)
    games = torch.randn(1, 2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    games.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda g: block(g, concept=concept, eps=0.05).sigma, (games,),
                                    eps=1e-4, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name, concept", PAIRS)
def test_a_block_that_estimates_its_memory_takes_the_limit_as_its_max_memory_gb_option(name, concept):
    """The size guard (did_core.blocks): an estimate is a positive number, and ``max_memory_gb`` refuses by it."""
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    size = SolveSize.of(constraints(games, full_mask(games), concept, Epsilon(0.05)), grad=True)
    estimate = create("blocks", name).memory_bytes(size)
    if estimate is None:
        pytest.skip(f"block {name!r} does not estimate its memory")
    assert 0 < estimate < 2**30
    with pytest.raises(SolveTooLarge, match=f"block {name!r}: a batch of 2 2-player 3x3 games"):
        create("blocks", name, max_memory_gb=estimate / 2**31)(games.requires_grad_(True), concept=concept)


def test_every_concept_has_an_exact_block():
    for concept in CONCEPTS:
        assert capabilities_of(registry("blocks").get(exact_block_for(concept)).value).exact


@pytest.mark.parametrize("task", TASKS)
def test_task_components_fit_together(task):
    spec = get_task(task)
    sampler = spec.sampler(**getattr(spec.sampler, "PROFILES", {}).get("quick", {}))
    objective = spec.objective()
    generator = spec.generator(sampler)
    assert set(spec.train_profiles) <= {"quick", "paper"} and spec.size_axis
    context = sampler.sample(4, torch.Generator().manual_seed(0))
    again = sampler.sample(4, torch.Generator().manual_seed(0))
    assert all(torch.equal(context[k], again[k]) for k in context), "sampling must be reproducible for a seed"
    assert all(v.shape[0] == 4 for v in context.values()), "every context tensor is batch-first"
    assert sampler.size_of(context).shape == (4,)
    x = generator(context)
    x0 = objective.baseline_intervention(context)
    assert x.shape == x0.shape
    games, mask = objective.induce(context, x)
    block = create("blocks", exact_block_for(CONCEPTS[0]))
    eq = block(games.double(), mask, concept=CONCEPTS[0], eps=0.05)
    loss, scalars = objective.loss(context, x, eq, 0.5)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    assert objective.value(context, x, eq).shape == (4,)
    # Contexts slice generically: a sub-batch goes through the same path.
    sub, x_sub = index_context(context, slice(0, 2)), x[:2].detach()
    sub_games, sub_mask = objective.induce(sub, x_sub)
    assert objective.value(sub, x_sub, block(sub_games.double(), sub_mask, concept=CONCEPTS[0])).shape == (2,)
