"""The policy block (did_core.policy) against independent truth: the occupancy LP (scipy HiGHS), brute-force
enumeration of a tree's paths, and finite differences."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from did_core.plugins import get_policy_block, registry
from did_core.policy import DiscountedMDP, TreeMDP, solve_policy

DOUBLE = torch.float64


def random_tree(rng: np.random.Generator, states: int = 9, actions: int = 3) -> TreeMDP:
    """A random tree: each new state hangs under a random (state, action) that is still free."""
    children = -np.ones((states, actions), dtype=np.int64)
    for s in range(1, states):
        free = [(p, a) for p in range(s) for a in range(actions) if children[p, a] < 0]
        p, a = free[rng.integers(len(free))]
        children[p, a] = s
    return TreeMDP(torch.from_numpy(children))


def random_discounted(rng: np.random.Generator, states: int = 5, actions: int = 3) -> DiscountedMDP:
    p = rng.random((states, actions, states)) ** 3
    p /= p.sum(-1, keepdims=True)
    start = rng.random(states)
    return DiscountedMDP(torch.from_numpy(p), torch.from_numpy(start / start.sum()), 0.8)


def transition_tensor(mdp: TreeMDP) -> np.ndarray:
    s, a = mdp.children.shape
    p = np.zeros((s, a, s))
    for i, j in itertools.product(range(s), range(a)):
        if mdp.children[i, j] >= 0:
            p[i, j, mdp.children[i, j]] = 1.0
    return p


def lp_optimum(p: np.ndarray, start: np.ndarray, discount: float, rewards: np.ndarray) -> float:
    """max sum x R over occupancies: sum_a x(s, a) = start(s) + discount sum_{s', a'} P(s | s', a') x(s', a')."""
    s, a = rewards.shape
    flow = np.zeros((s, s * a))
    for i in range(s):
        flow[i, i * a:(i + 1) * a] += 1.0
        flow[i] -= discount * p[:, :, i].reshape(-1)
    result = linprog(-rewards.reshape(-1), A_eq=flow, b_eq=start, bounds=(0, None), method="highs")
    assert result.status == 0
    return -result.fun


def paths(mdp: TreeMDP, state: int = 0) -> list[list[tuple[int, int]]]:
    """Every (state, action) path from ``state`` to the end of the episode."""
    out = []
    for a in range(mdp.num_actions):
        child = int(mdp.children[state, a])
        tails = paths(mdp, child) if child >= 0 else [[]]
        out += [[(state, a)] + tail for tail in tails]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_exact_tree_optimum_is_the_lp_optimum(seed):
    rng = np.random.default_rng(seed)
    mdp = random_tree(rng)
    rewards = torch.from_numpy(rng.normal(size=(3, mdp.num_states, mdp.num_actions)))
    solution = solve_policy(mdp, rewards, 0.0)
    start = np.eye(mdp.num_states)[0]
    for b in range(3):
        best = lp_optimum(transition_tensor(mdp), start, 1.0, rewards[b].numpy())
        assert float(solution.value[b]) == pytest.approx(best, abs=1e-8)
        assert float((solution.occupancy[b] * rewards[b]).sum()) == pytest.approx(best, abs=1e-8)
    assert torch.all((solution.policy == 0) | (solution.policy == 1))


@pytest.mark.parametrize("seed", range(3))
def test_soft_tree_value_is_the_log_partition_over_paths(seed):
    rng = np.random.default_rng(10 + seed)
    mdp = random_tree(rng, states=8)
    rewards = torch.from_numpy(rng.normal(size=(1, mdp.num_states, mdp.num_actions)))
    alpha = 0.3
    totals = torch.tensor([sum(float(rewards[0, s, a]) for s, a in path) for path in paths(mdp)], dtype=DOUBLE)
    solution = solve_policy(mdp, rewards, alpha)
    assert float(solution.value[0]) == pytest.approx(alpha * float(torch.logsumexp(totals / alpha, 0)), abs=1e-10)
    # the path distribution is the Gibbs distribution over paths: occupancy = expected visits
    weights = torch.softmax(totals / alpha, 0)
    expected = torch.zeros(mdp.num_states, mdp.num_actions, dtype=DOUBLE)
    for w, path in zip(weights, paths(mdp)):
        for s, a in path:
            expected[s, a] += w
    assert torch.allclose(solution.occupancy[0], expected, atol=1e-10)


def test_soft_tree_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    mdp = random_tree(rng, states=7)
    rewards = torch.from_numpy(rng.normal(size=(2, mdp.num_states, mdp.num_actions))).requires_grad_()
    assert torch.autograd.gradcheck(lambda r: solve_policy(mdp, r, 0.2).occupancy, (rewards,))
    value = solve_policy(mdp, rewards, 0.2).value.sum()
    (grad,) = torch.autograd.grad(value, rewards)
    assert torch.allclose(grad, solve_policy(mdp, rewards, 0.2).occupancy, atol=1e-10)  # the envelope theorem


def test_exact_ties_go_to_the_lowest_action():
    mdp = TreeMDP(torch.tensor([[1, 2, -1], [-1, -1, -1], [-1, -1, -1]]))
    rewards = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 1.0]]], dtype=DOUBLE)
    solution = solve_policy(mdp, rewards, 0.0)
    assert solution.policy[0].argmax(-1).tolist() == [0, 0, 1]  # three ways to 1 from the start: action 0


@pytest.mark.parametrize("seed", range(3))
def test_exact_discounted_optimum_is_the_lp_optimum(seed):
    rng = np.random.default_rng(20 + seed)
    mdp = random_discounted(rng)
    rewards = torch.from_numpy(rng.normal(size=(2, mdp.num_states, mdp.num_actions)))
    solution = solve_policy(mdp, rewards, 0.0)
    for b in range(2):
        best = lp_optimum(mdp.transitions.numpy(), mdp.start.numpy(), mdp.discount, rewards[b].numpy())
        assert float(solution.value[b]) == pytest.approx(best, abs=1e-8)
        assert float((solution.occupancy[b] * rewards[b]).sum()) == pytest.approx(best, abs=1e-8)
    # a small alpha approaches the exact optimum from above, by at most alpha log(A) / (1 - gamma)
    soft = solve_policy(mdp, rewards, 1e-3)
    gap = soft.value - solution.value
    assert bool((gap >= -1e-9).all()) and bool((gap <= 1e-3 * math.log(3) / 0.2 + 1e-9).all())


def test_soft_value_iteration_is_a_fixed_point_and_differentiates_implicitly():
    rng = np.random.default_rng(5)
    mdp = random_discounted(rng, states=4)
    alpha = 0.25
    rewards = torch.from_numpy(rng.normal(size=(2, mdp.num_states, mdp.num_actions))).requires_grad_()
    solution = solve_policy(mdp, rewards, alpha)
    v = (solution.q.detach() - rewards.detach())  # gamma P V
    values = alpha * torch.logsumexp(solution.q.detach() / alpha, -1)
    assert torch.allclose(v, mdp.discount * torch.einsum("sat,bt->bsa", mdp.transitions, values), atol=1e-10)
    assert torch.autograd.gradcheck(lambda r: solve_policy(mdp, r, alpha).occupancy, (rewards,))
    assert torch.autograd.gradcheck(lambda r: solve_policy(mdp, r, alpha).value, (rewards,))
    (grad,) = torch.autograd.grad(solve_policy(mdp, rewards, alpha).value.sum(), rewards)
    assert torch.allclose(grad, solution.occupancy.detach(), atol=1e-8)


def test_blocks_are_registered_and_refuse_the_wrong_mdp():
    assert {"backward-induction", "value-iteration"} <= set(registry("policy_blocks").names())
    tree = TreeMDP(torch.tensor([[-1, -1]]))
    with pytest.raises(TypeError, match="solves a DiscountedMDP"):
        get_policy_block("value-iteration")(tree, torch.zeros(1, 1, 2, dtype=DOUBLE), 0.0)
    with pytest.raises(ValueError, match="alpha"):
        get_policy_block("backward-induction")(tree, torch.zeros(1, 1, 2, dtype=DOUBLE), -1.0)
    with pytest.raises(ValueError, match="tree"):
        TreeMDP(torch.tensor([[1, 1], [-1, -1]]))
