"""Gradients: double-precision gradcheck by unrolling, graph memory per round, truncated backprop."""

import math

import pytest
import torch

from did_core.plugins import get_concept
from did_no_regret import NoRegretBlock

LEARNERS = ["hedge", "regret_matching", "regret_matching_plus"]


CASES = [(sizes, "hedge") for sizes in ([2, 2], [2, 3], [2, 2, 2])] + [([2, 3], "regret_matching"),
                                                                      ([2, 2, 2], "regret_matching_plus")]


@pytest.mark.parametrize("sizes, learner", CASES)
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_gradcheck_on_small_games(sizes, learner, concept):
    """Autograd through 20 rounds equals central differences of the whole map (scale R_p included).

    Regret matching is only piecewise smooth (positive parts, the uniform fallback): its gradient is
    exact away from the kinks, which random games avoid almost surely."""
    games = torch.randn(2, len(sizes), *sizes, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    games.requires_grad_(True)
    block = NoRegretBlock(rounds=20, learner=learner)
    assert torch.autograd.gradcheck(lambda g: block(g, concept=get_concept(concept)).sigma, (games,), eps=1e-6, atol=1e-7,
                                    rtol=1e-5)


@pytest.mark.parametrize("options", [{"optimism": False}, {"eta": 1.5}])
def test_gradcheck_other_hedge_settings_with_padding(options):
    games = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 2, 3, dtype=torch.bool)
    mask[0, 1, 2] = False
    mask[1, 0, 1:] = False
    games.requires_grad_(True)
    block = NoRegretBlock(rounds=30, **options)
    for concept in ("cce", "ce"):
        assert torch.autograd.gradcheck(lambda g: block(g, mask, concept=get_concept(concept)).sigma, (games,), eps=1e-6,
                                        atol=1e-7, rtol=1e-5)


def _saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass while ``fn`` runs."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@pytest.mark.parametrize("sizes", [[8, 8], [6, 6, 6]])
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_graph_memory_grows_linearly_and_never_holds_a_joint_per_round(sizes, concept):
    """Per round the graph keeps strategies and learner states (O(B N A), swap learners O(B N A^2)) and,
    for 3 or more players, partial contractions (O(B sum_p J / A_p)); never a joint [B, J] per round."""
    batch, n, a = 4, len(sizes), max(sizes)
    games = torch.randn(batch, n, *sizes, dtype=torch.float64, requires_grad=True)

    def saved(rounds: int, **options) -> int:
        return _saved_bytes(lambda: NoRegretBlock(rounds=rounds, **options)(games, concept=get_concept(concept)).sigma)

    s50, s100, s200 = saved(50), saved(100), saved(200)
    per_round = (s200 - s100) / 100
    assert (s100 - s50) / 50 == pytest.approx(per_round, rel=0.1)  # linear in T
    joints = math.prod(sizes)
    contractions = sum(joints // s for s in sizes) if n > 2 else 0
    strategies = n * a * (a if concept == "ce" else 1)
    assert per_round <= 8 * batch * 4 * (strategies + contractions)  # float64 bytes
    assert saved(200, grad_rounds=50) <= 1.1 * s50  # K differentiated rounds cost what a K-round run does


def test_grad_rounds_truncates_the_gradient_only():
    games = torch.randn(3, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    weights = torch.randn(3, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))

    def run(**options):
        g = games.clone().requires_grad_(True)
        sigma = NoRegretBlock(rounds=100, **options)(g, concept=get_concept("cce")).sigma
        (sigma * weights).sum().backward()
        return sigma.detach(), g.grad

    full, grad_full = run()
    same, grad_same = run(grad_rounds=100)
    cut, grad_cut = run(grad_rounds=10)
    assert torch.equal(full, same) and torch.allclose(full, cut, rtol=0, atol=1e-15)  # same forward pass (but for
    # the order of the running sum)
    assert torch.allclose(grad_full, grad_same, atol=1e-14)
    assert torch.isfinite(grad_cut).all() and not torch.allclose(grad_cut, grad_full)


def test_no_graph_without_requires_grad_and_float32():
    games = torch.randn(2, 2, 3, 3)
    eq = NoRegretBlock(rounds=50)(games, concept=get_concept("cce"))
    assert eq.sigma.dtype == torch.float32 and not eq.sigma.requires_grad and torch.isfinite(eq.sigma).all()
    assert torch.allclose(eq.sigma.flatten(1).sum(1), torch.ones(2), atol=1e-5)
