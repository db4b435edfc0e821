"""Contract tests swept over every registered block, concept and task: the promises any plugin must keep.

Blocks are swept over the concepts they declare (``Capabilities.concepts``). A concept need not have an
eps-equilibrium in every game (a third-party concept may add rows, e.g. a cap on every joint action), so a test
draws its random games until the concept has one with room to spare in each (:func:`_with_equilibria`, checked by
a linear program independent of the blocks); for CE and CCE that is the first draw.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

import toys
from collections.abc import Callable

from did_core.blocks import SolveSize, SolveTooLarge, capabilities_of
from did_core.concepts import Concept
from did_core.components import get_task
from did_core.equilibria import Epsilon, constraints
from did_core.games import embed, full_mask
from did_core.plugins import DEFAULT_CONCEPT, create, exact_block_for, get_concept, registry
from did_core.tasks import index_context

with toys.toy_plugins():  # the sweep covers the toys (tests/toys.py) beside whatever is installed
    CONCEPTS = registry("concepts").names()
    PAIRS = [(block.name, concept) for block in registry("blocks") for concept in CONCEPTS
             if capabilities_of(block.value).supports(concept)]
    TASKS = registry("tasks").names()


#: The slack (each row scaled to max |D_kj| = 1) with which a test game's concept must have a feasible joint.
MARGIN = 1e-3
#: Seeds tried per test before a concept is declared to have too few games with an equilibrium to be swept.
TRIES = 50


def _padded_games(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    games = torch.randn(3, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    mask = full_mask(games)
    mask[0, 0, 3] = False
    mask[1, 1, 2:] = False
    return games * (mask[:, 0, :, None] & mask[:, 1, None, :]).unsqueeze(1), mask


def _random_games(*shape: int) -> "Callable[[int], tuple[torch.Tensor, torch.Tensor]]":
    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        games = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        return games, full_mask(games)

    return draw


def _margins(games: torch.Tensor, mask: torch.Tensor, concept: Concept) -> list[float]:
    """Per game, the largest slack ``t <= 1`` with which some joint satisfies every real row of ``concept`` (each row
    scaled to max |D_kj| = 1), by scipy's linear programming on the dense rows: > 0 where an eps-equilibrium exists."""
    cons = constraints(games, mask, concept, Epsilon(0.05))
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


def _with_equilibria(draw, concept: Concept, seed: int, accept=lambda games, mask: True):
    """``draw(seed)``, else ``draw(seed + 1000)``, ...: the first games in each of which ``concept`` has an
    eps-equilibrium with slack :data:`MARGIN` and that ``accept``."""
    for attempt in range(TRIES):
        games, mask = draw(seed + 1000 * attempt)
        if min(_margins(games, mask, concept)) >= MARGIN and accept(games, mask):
            return games, mask
    pytest.skip(f"concept {concept.name!r} has an eps-equilibrium in too few random games ({TRIES} draws) to be "
                f"swept")


def _nondegenerate(games: torch.Tensor, mask: torch.Tensor, concept: Concept) -> bool:
    """Whether every real row is clearly active (``alpha_k c > 1e-3``) or clearly slack (``(eps_k - D_k sigma) / c
    > 1e-3``, ``c`` the game's largest |gain|) at the exact eps-ME: the active set then stays the same within a
    finite-difference step of 1e-4, and the answer is smooth there."""
    eq = create("blocks", exact_block_for(concept.name))(games, mask, concept=concept, eps=0.05)
    cons = constraints(games, mask, concept, Epsilon(0.05))
    c = cons.operator.scale().unsqueeze(1)
    alpha = eq.alpha.reshape(len(games), -1)
    slack = cons.eps - cons.operator.regrets(eq.sigma.reshape(len(games), -1))
    clear = (alpha * c > 1e-3) | (slack / c > 1e-3)
    return bool(clear[cons.rows].all())


@pytest.mark.parametrize("name, concept", PAIRS)
def test_block_returns_distributions_with_zero_mass_on_padding(name, concept):
    block = create("blocks", name)
    games, mask = _with_equilibria(_padded_games, get_concept(concept), 0)
    eq = block(games, mask, concept=get_concept(concept), eps=Epsilon(0.05))
    assert eq.sigma.shape == (3, 4, 4) and eq.concept.name == concept
    assert torch.all(eq.sigma >= 0)
    assert torch.allclose(eq.sigma.flatten(1).sum(1), torch.ones(3, dtype=eq.sigma.dtype))
    assert eq.sigma[0, 3, :].abs().max() == 0 and eq.sigma[1, :, 2:].abs().max() == 0
    assert set(eq.info) >= {"gap", "violation", "entropy"}
    assert all(v.shape[0] == 3 for v in eq.info.values())
    if eq.alpha is not None:
        assert eq.alpha.shape == (3, *get_concept(concept).dual_shape((4, 4)))
    if capabilities_of(registry("blocks").get(name).value).exact:
        # An exact block's answer is feasible: every constraint row within its tolerance.
        cons = constraints(games, mask, get_concept(concept), Epsilon(0.05))
        slack = cons.operator.regrets(eq.sigma.reshape(3, -1).double()) - cons.eps
        assert float(slack[cons.rows].max()) <= 1e-7


@pytest.mark.parametrize("name, concept", PAIRS)
def test_block_is_invariant_to_the_embedding_with_relative_eps(name, concept):
    block = create("blocks", name)
    games, _ = _with_equilibria(_random_games(2, 2, 3, 3), get_concept(concept), 1)
    a = block(games, concept=get_concept(concept)).sigma
    b = block(embed(games, full_mask(games)) * 3.0, concept=get_concept(concept)).sigma
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name, concept", PAIRS)
def test_block_passes_a_double_precision_gradcheck(name, concept):
    """The gradient a block back-propagates equals central finite differences of its answer.

    Two things make finite differences of an exact block's answer wrong whatever its gradient:

    * a kink: at a degenerate active set (a row nearly active with a multiplier near 0) a step
      straddles the change of active set. The game is one where every row is clearly active or
      clearly slack (:func:`_nondegenerate`);
    * the forward answer's own error ``delta``: central differences of answers accurate to ``delta``
      are off by up to ``delta / h`` (the errors at ``g + h`` and ``g - h`` do not cancel).
      ``exact_newton`` stops at a KKT residual of 1e-10, but ECOS's joints (its exponential cone)
      are accurate only to 1e-9..2e-8, which at ``h = 1e-4`` is up to 2e-4: the 2.7e-5 > 1e-5 seen
      with a concept that keeps fewer rows. So the tolerance adds ``4 delta / h``, ``delta`` the
      exact block's distance to the preferred exact block's answer (at least 1e-10, that block's own
      accuracy); an approximate block's answer is a smooth function computed to rounding (``delta``
      0). A larger step would shrink that term but straddle more active sets; 1e-4 is kept.
    """
    block = create("blocks", name)
    games, _ = _with_equilibria(_random_games(1, 2, 2, 3), get_concept(concept), 2,
                                lambda g, m: _nondegenerate(g, m, get_concept(concept)))
    step, delta = 1e-4, 0.0
    if capabilities_of(registry("blocks").get(name).value).exact:
        preferred = create("blocks", exact_block_for(concept))(games, concept=get_concept(concept), eps=0.05)
        delta = max(float((block(games, concept=get_concept(concept), eps=0.05).sigma - preferred.sigma).abs().max()),
                    1e-10)
    games.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda g: block(g, concept=get_concept(concept), eps=0.05).sigma, (games,),
                                    eps=step, atol=1e-5 + 4 * delta / step, rtol=1e-3)


@pytest.mark.parametrize("name, concept", PAIRS)
def test_a_block_that_estimates_its_memory_takes_the_limit_as_its_max_memory_gb_option(name, concept):
    """The size guard (did_core.blocks): an estimate is a positive number, and ``max_memory_gb`` refuses by it."""
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    size = SolveSize.of(constraints(games, full_mask(games), get_concept(concept), Epsilon(0.05)), grad=True)
    estimate = create("blocks", name).memory_bytes(size)
    if estimate is None:
        pytest.skip(f"block {name!r} does not estimate its memory")
    assert 0 < estimate < 2**30
    with pytest.raises(SolveTooLarge, match=f"block {name!r}: a batch of 2 2-player 3x3 games"):
        create("blocks", name, max_memory_gb=estimate / 2**31)(games.requires_grad_(True), concept=get_concept(concept))


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
    concept = get_concept(DEFAULT_CONCEPT)  # a task works under the default concept (another may have no equilibria)
    block = create("blocks", exact_block_for(concept.name))
    eq = block(games.double(), mask, concept=concept, eps=0.05)
    loss, scalars = objective.loss(context, x, eq, 0.5)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    assert objective.value(context, x, eq).shape == (4,)
    # Contexts slice generically: a sub-batch goes through the same path.
    sub, x_sub = index_context(context, slice(0, 2)), x[:2].detach()
    sub_games, sub_mask = objective.induce(sub, x_sub)
    assert objective.value(sub, x_sub, block(sub_games.double(), sub_mask, concept=concept)).shape == (2,)
