"""The commitment generator's unrolled refinement: the followers' logit model and the leader's surrogate
utility against plain loops, the unrolled ascent (it ascends, gradcheck through it, no graph in evaluation),
and the generator with and without it."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from did_stackelberg import CommitmentGenerator, CommitmentSampler
from did_stackelberg.commitment import payoff_scale
from did_core.equilibria import Epsilon
from did_core.plugins import create, get_concept
from did_stackelberg.refine import ascend, eps_best_response, logit_followers, surrogate_value


def _context(followers: int, batch: int = 3, seed: int = 0):
    sampler = CommitmentSampler(n_followers=followers, min_actions=2, max_actions=3, reference=False)
    context = sampler.sample(batch, torch.Generator().manual_seed(seed))
    return {k: (v.double() if v.is_floating_point() else v) for k, v in context.items()}


def _loop_model(g, mask, beta):
    """``q(a) ∝ exp(-beta * sum_i (max_d g_i(d, a_-i) - g_i(a)))`` over real joint actions, by loops."""
    n, counts = g.shape[0], [int(c) for c in mask.sum(dim=1)]
    weights = {}
    for a in itertools.product(*[range(c) for c in counts]):
        regret = 0.0
        for i in range(n):
            best = max(float(g[i][a[:i] + (d,) + a[i + 1:]]) for d in range(counts[i]))
            regret += best - float(g[i][a])
        weights[a] = math.exp(-beta * regret)
    total = sum(weights.values())
    return {a: w / total for a, w in weights.items()}


@pytest.mark.parametrize("followers", [1, 2])
def test_model_and_surrogate_value_match_plain_loops(followers):
    context = _context(followers)
    b, l = context["leader_mask"].shape
    x = torch.softmax(torch.randn(b, 2, l, dtype=torch.float64).masked_fill(~context["leader_mask"][:, None], -1e9), 2)
    precision = torch.tensor([3.0, 10.0, 30.0], dtype=torch.float64)
    value = surrogate_value(context["leader"], context["followers"], x,
                            lambda games: logit_followers(games, context["mask"], precision))
    assert value.shape == (b, 2)
    for i in range(b):
        for k in range(2):
            g = torch.einsum("l,nl...->n...", x[i, k], context["followers"][i])
            q = _loop_model(g, context["mask"][i], float(precision[i]))
            games = g.unsqueeze(0).unsqueeze(0)
            model = logit_followers(games, context["mask"][i:i + 1], precision[i:i + 1])[0, 0]
            assert float(model.sum()) == pytest.approx(1.0)
            for a, p in q.items():
                assert float(model[a]) == pytest.approx(p, rel=1e-9, abs=1e-12)
            assert float(model.sum()) == pytest.approx(sum(q.values()))  # padded joint actions get nothing
            expected = sum(float(x[i, k, m]) * p * float(context["leader"][i][(m, *a)])
                           for a, p in q.items() for m in range(l))
            assert float(value[i, k]) == pytest.approx(expected, rel=1e-9)


def test_one_follower_model_is_the_logit_response():
    games = torch.tensor([[[[0.2, 0.5, 0.1]]]], dtype=torch.float64)  # [B=1, K=1, N=1, A=3]
    mask = torch.tensor([[[True, True, False]]])
    q = logit_followers(games, mask, torch.tensor([4.0], dtype=torch.float64))[0, 0]
    expected = torch.softmax(torch.tensor([0.8, 2.0], dtype=torch.float64), 0)
    assert torch.allclose(q[:2], expected) and q[2] == 0


def test_ascent_climbs_a_smooth_objective_and_gradcheck_passes():
    target = torch.tensor([[[0.1, 0.7, 0.2, 0.0]]], dtype=torch.float64)
    real = torch.tensor([[[True, True, True, False]]])

    def value(x):
        return (x * target).sum(dim=2) - 0.5 * x.pow(2).sum(dim=2)

    start = torch.zeros(1, 1, 4, dtype=torch.float64)
    x0 = torch.softmax(start.masked_fill(~real, -torch.inf), 2)
    with torch.no_grad():
        x = ascend(start, real, torch.full((10,), 2.0, dtype=torch.float64), value)
    assert float(value(x)) > float(value(x0)) + 0.05 and x[0, 0, 3] == 0
    assert int(x[0, 0].argmax()) == 1

    steps = torch.full((3,), 0.7, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(1, 1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, s: ascend(z, real, s, value)[..., :3], (logits, steps))


@pytest.mark.parametrize("gradient", ["unrolled", "first_order"])
def test_ascent_keeps_no_graph_under_no_grad_and_agrees_with_training_mode(gradient):
    context = _context(1, batch=4, seed=3)
    generator = CommitmentGenerator(CommitmentSampler(min_actions=2, max_actions=3), width=8, depth=1,
                                    refine_gradient=gradient).double()
    with torch.no_grad():
        evaluated = generator(context)
    trained = generator(context)
    assert not evaluated.requires_grad and trained.requires_grad
    assert torch.allclose(evaluated, trained.detach(), atol=1e-12)
    trained.sum().backward()
    assert generator.refine_offsets.grad is not None and (generator.refine_offsets.grad != 0).all()


@pytest.mark.parametrize("followers", [1, 2])
def test_refinement_raises_the_surrogate_utility_of_an_untrained_generator(followers):
    """The same network with and without the ascent: refined commitments are distributions and, on average,
    better against the followers' model than the unrefined mixture."""
    context = _context(followers, batch=6, seed=5)
    sampler = CommitmentSampler(n_followers=followers, min_actions=2, max_actions=3)
    torch.manual_seed(1)
    plain = CommitmentGenerator(sampler, width=8, depth=1, refine_steps=0).double()
    torch.manual_seed(1)
    refined = CommitmentGenerator(sampler, width=8, depth=1, refine_steps=10).double()
    with torch.no_grad():
        x0, x1 = plain(context), refined(context)
    real = context["leader_mask"]
    assert torch.allclose(x1.sum(dim=1), torch.ones(6, dtype=torch.float64)) and (x1[~real] == 0).all()
    precision = refined.refine_parameters()[0].detach() / payoff_scale(context)[:, 1:].mean(dim=1)
    def model(games):
        return logit_followers(games, context["mask"], precision)

    before = surrogate_value(context["leader"], context["followers"], x0[:, None], model)
    after = surrogate_value(context["leader"], context["followers"], x1[:, None], model)
    assert float(after.mean()) > float(before.mean())


@pytest.mark.parametrize("eps", [Epsilon(0.003, relative=False), Epsilon(0.05), Epsilon(5.0, relative=False)])
def test_eps_best_response_is_the_exact_blocks_answer(eps):
    """One follower: the max-entropy eps-best response equals the exact block's eps-ME equilibrium of the
    one-player game (including a tolerance so large that the answer is uniform)."""
    torch.manual_seed(4)
    games = torch.rand(5, 2, 4, dtype=torch.float64)  # [B, K, A]
    mask = torch.tensor([[True] * 4, [True] * 3 + [False]] * 2 + [[True, True, False, False]])
    games = games.masked_fill(~mask.unsqueeze(1), 0.0)
    flat_mask = mask.repeat_interleave(2, dim=0).unsqueeze(1)  # [B K, 1, A]
    flat = games.reshape(10, 1, 4)
    exact = create("blocks", "exact_newton")(flat, flat_mask, concept=get_concept("cce"), eps=eps).sigma.view(5, 2, 4)
    tolerance = eps.per_player(flat, flat_mask).view(5, 2)
    ours = eps_best_response(games, mask, tolerance)
    assert torch.allclose(ours, exact, atol=1e-6) and (ours[~mask.unsqueeze(1).expand_as(ours)] == 0).all()
    regret = ((games.masked_fill(~mask.unsqueeze(1), -torch.inf).amax(2, keepdim=True) - games) * ours).sum(2)
    assert (regret <= tolerance + 1e-9).all()


def test_generator_bound_to_a_tolerance_refines_against_the_exact_answer():
    """build_task_parts binds the run's tolerance; with one follower the refinement then models the follower as
    the block does, and an unbound generator (or several followers) keeps the logit model."""
    from did_core.components import build_task_parts
    from did_core.config import resolve_train_config

    cfg = resolve_train_config({"task": "commitment", "eps": 0.003, "absolute_eps": True,
                                "generator_options": {"width": 8, "depth": 1}})
    _, sampler, _, generator = build_task_parts(cfg)
    assert generator.tolerance == Epsilon(0.003, relative=False)
    games = torch.rand(3, 2, 1, 4)
    mask = torch.ones(3, 1, 4, dtype=torch.bool)
    exact = generator._follower_model(mask, torch.ones(3))(games)
    assert torch.allclose(exact, eps_best_response(games[:, :, 0], mask[:, 0], torch.full((3, 2), 0.003)))
    generator.bind_tolerance(None)
    assert torch.allclose(generator._follower_model(mask, torch.ones(3))(games),
                          logit_followers(games, mask, torch.ones(3)))
