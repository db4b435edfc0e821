"""``did_contract.search``: the per-instance contract search, checked against brute force under the exact blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from did_contract import ContractSampler
from did_contract.design import ContractInstances
from did_contract.problem import load_problem
from did_contract.search import optimise_contracts, screening_candidates, search_budget
from did_contract.task import induced_games, principal_utility
from did_core.plugins import create, get_concept
from did_core.tasks import index_context

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "christmas_tree.json"
CCE = get_concept("cce")
#: A contract worth about +2.76 on the Christmas tree (found by the search with 200 steps).
GOOD = torch.tensor([[[1.556, 0.705, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)


@pytest.fixture(scope="module")
def newton():
    return create("blocks", "exact_newton")


def _utility(block, context, contracts, concept=CCE):
    with torch.no_grad():
        eq = block(induced_games(context, contracts), context["mask"], concept=concept, eps=0.05)
        return principal_utility(context, contracts, eq.sigma)


def _contexts(batch, seed, **options):
    sampler = ContractSampler(**{"max_actions": 4, "max_outcomes": 4, **options})
    context = sampler.sample(batch, torch.Generator().manual_seed(seed))
    return {k: v.double() if v.is_floating_point() else v for k, v in context.items()}


def test_christmas_tree_zero_is_a_strict_local_maximum_yet_the_search_beats_every_bonus_on_a_grid(newton):
    context = load_problem(EXAMPLE).context
    zero = torch.zeros(1, 2, 3, dtype=torch.float64, requires_grad=True)
    eq = newton(induced_games(context, zero), context["mask"], concept=CCE, eps=0.05)
    base = principal_utility(context, zero, eq.sigma)
    base.sum().backward()
    assert (zero.grad < 0).all()  # every payment lowers the utility at 0: ascent from zero stays there
    # brute force: a bonus on one outcome to each sibling, both sizes on a grid 0, 0.2, ..., 4
    grid = torch.linspace(0.0, 4.0, 21, dtype=torch.float64)
    alice, bob = torch.meshgrid(grid, grid, indexing="ij")
    bonuses = torch.zeros(3, grid.numel() ** 2, 2, 3, dtype=torch.float64)
    for w in range(3):
        bonuses[w, :, 0, w], bonuses[w, :, 1, w] = alice.reshape(-1), bob.reshape(-1)
    bonuses = bonuses.reshape(-1, 2, 3)
    many = {k: v.expand(bonuses.shape[0], *v.shape[1:]) for k, v in context.items()}
    best_bonus = float(_utility(newton, many, bonuses).max())
    assert best_bonus > float(base.detach()) + 2.0
    found = optimise_contracts(context, newton, CCE, steps=20)
    value = float(_utility(newton, context, found))
    assert value >= best_bonus - 1e-9
    # the other exact block (ECOS) agrees on what the found contract is worth
    assert float(_utility(create("blocks", "exact_cvx"), context, found)) == pytest.approx(value, abs=1e-5)


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_never_worse_than_no_contract_and_zero_where_nothing_helps(newton, concept):
    concept = get_concept(concept)
    context = _contexts(12, seed=3)
    found = optimise_contracts(context, newton, concept, steps=4)
    zeros = torch.zeros_like(found)
    value, base = _utility(newton, context, found, concept), _utility(newton, context, zeros, concept)
    assert (value >= base - 1e-9).all()
    assert (value > base + 1e-3).any()  # and it does find something on these contexts
    assert (found >= 0).all() and (found[~context["outcome_mask"].unsqueeze(1).expand_as(found)] == 0).all()
    assert (found[value <= base] == 0).all()


def test_an_extra_start_better_than_every_built_in_one_is_kept(newton):
    context = load_problem(EXAMPLE).context
    weak = {"scales": (1 / 64,), "shares": (), "top_outcomes": 1}  # built-in starts: tiny bonuses only
    good = float(_utility(newton, context, GOOD))
    assert float(_utility(newton, context, optimise_contracts(context, newton, CCE, steps=0, **weak))) < good - 1.0
    kept = optimise_contracts(context, newton, CCE, steps=0, start=GOOD, **weak)
    assert torch.equal(kept, GOOD)
    polished = optimise_contracts(context, newton, CCE, steps=5, start=GOOD, **weak)
    assert float(_utility(newton, context, polished)) >= good - 1e-12
    with pytest.raises(ValueError, match="start must be contracts"):
        optimise_contracts(context, newton, CCE, steps=0, start=GOOD[:, :1])


def test_a_padded_batch_gives_each_context_what_it_gets_alone(newton):
    context = _contexts(4, seed=5, max_actions=5, max_outcomes=5, same_actions=False)
    batched = optimise_contracts(context, newton, CCE, steps=3)
    sampler = ContractSampler(n_players=2)
    for b in range(4):
        one = index_context(context, [b])
        alone = sampler.crop(one, [int(n) for n in sampler.extents(one)[0]])
        t = optimise_contracts(alone, newton, CCE, steps=3)
        assert torch.allclose(batched[b:b + 1, :, :t.shape[-1]], t, atol=1e-6)
        assert (batched[b, :, t.shape[-1]:] == 0).all()


class _Counting:
    """A block that counts the games it solves."""

    def __init__(self, block):
        self.block, self.games = block, 0

    def __call__(self, games, mask=None, **options):
        self.games += games.shape[0]
        return self.block(games, mask, **options)


def test_the_budget_counts_every_solve(newton):
    context = _contexts(5, seed=7)
    start = torch.rand(5, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    counting = _Counting(newton)
    optimise_contracts(context, counting, CCE, steps=3, start=start, keep=2, keep_earned=1)
    budget = search_budget(context, 3, start=start, keep=2, keep_earned=1)
    assert budget.solves == counting.games
    _, valid, names = screening_candidates(context)
    assert budget.screened == int(valid.sum()) + 5 and len(names) == valid.shape[1]
    line = ContractInstances().describe_budget(load_problem(EXAMPLE).context, 200)
    assert line.startswith("screened ") and line.endswith(" block solves") and "best 6 x 200 steps" in line
