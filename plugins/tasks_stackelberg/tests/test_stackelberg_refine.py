"""The commitment generator's unrolled refinement: the followers' logit model and the leader's surrogate
utility against plain loops, the unrolled ascent (it ascends, gradcheck through it, no graph in evaluation),
and the generator with and without it."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from did_stackelberg import CommitmentGenerator, CommitmentSampler
from did_stackelberg.commitment import payoff_scale
from did_core.equilibria import Epsilon
from did_core.plugins import create, get_concept
from did_stackelberg.reference import me_best_response
from did_stackelberg.refine import ascend, eps_best_response, logit_followers, response_precision, surrogate_value


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
    ours, _ = eps_best_response(games, mask, tolerance)
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
    respond = generator._follower_model(mask, torch.ones(3))
    exact = respond(games)
    assert torch.allclose(exact, eps_best_response(games[:, :, 0], mask[:, 0], torch.full((3, 2), 0.003))[0])
    moved = games + 0.05 * torch.rand(3, 2, 1, 4)  # the next call starts from this call's precision
    assert torch.allclose(respond(moved), eps_best_response(moved[:, :, 0], mask[:, 0], torch.full((3, 2), 0.003))[0],
                          atol=1e-6)
    generator.bind_tolerance(None)
    assert torch.allclose(generator._follower_model(mask, torch.ones(3))(games),
                          logit_followers(games, mask, torch.ones(3)))


def _hard_games() -> tuple[Tensor, Tensor]:
    """One-follower games ``[B=8, K=2, A=5]`` and masks ``[8, 5]``: random, near-ties (``1e-3``, ``1e-6``),
    exact ties, one real action, a tiny and a huge payoff scale."""
    torch.manual_seed(11)
    games = torch.rand(8, 2, 5, dtype=torch.float64)
    games[1, :, 1] = games[1, :, 0] = games[1, :, :].amax(dim=1)  # two exact best responses
    games[2, :, 1] = games[2, :, :].amax(dim=1) - 1e-3
    games[3, :, 2] = games[3, :, :].amax(dim=1) - 1e-6
    games[4] *= 1e-4
    games[5] *= 1e4
    mask = torch.ones(8, 5, dtype=torch.bool)
    mask[6, 3:] = False
    mask[7, 1:] = False  # one real action: the response is pure whatever eps
    return games.masked_fill(~mask.unsqueeze(1), 0.0), mask


@pytest.mark.parametrize("eps", [1e-4, 3e-3, 0.05, 0.3])
def test_newton_precision_is_the_bisections_to_float64_resolution(eps):
    """The safeguarded Newton search against a 200-step float64 bisection (the reference's, an independent
    implementation): the same response to 1e-12 and the expected regret eps to a relative 1e-12 wherever the
    uniform response is not within eps (the 32-step bisection it replaced gave beta to a relative 1e-8)."""
    games, mask = _hard_games()
    scale = torch.ones(8, 1, dtype=torch.float64)
    scale[4], scale[5] = 1e-4, 1e4
    tolerance = (eps * scale).expand(8, 2).contiguous()
    ours, beta = eps_best_response(games, mask, tolerance)
    for b in range(8):
        real = mask[b]
        expected = me_best_response(games[b][:, real], eps * float(scale[b]))
        assert torch.allclose(ours[b][:, real], expected, rtol=0, atol=1e-12)
        assert (ours[b][:, ~real] == 0).all()
    regret = ((games.masked_fill(~mask.unsqueeze(1), -torch.inf).amax(2, keepdim=True) - games) * ours).sum(2)
    searched = beta > 0
    assert torch.allclose(regret[searched], tolerance[searched], rtol=1e-12, atol=0)
    assert (regret[~searched] <= tolerance[~searched]).all()


def test_warm_starts_anywhere_reach_the_same_precision():
    """Starts from 0 to 1e20 (far outside the bracket), or not a number: the same beta to float64 resolution."""
    games, mask = _hard_games()
    tolerance = torch.full((8, 2), 3e-3, dtype=torch.float64)
    _, cold = eps_best_response(games, mask, tolerance)
    for start in (0.0, 1e-9, 1.0, 1e3, 1e20, float("nan")):
        _, warm = eps_best_response(games, mask, tolerance, start=torch.full((8, 2), start, dtype=torch.float64))
        assert torch.allclose(warm, cold, rtol=1e-12, atol=0)
    _, again = eps_best_response(games, mask, tolerance, start=cold * (1 + 0.3 * torch.randn(8, 2)).abs())
    assert torch.allclose(again, cold, rtol=1e-12, atol=0)


def test_float32_response_matches_float64_as_the_generator_needs():
    """The generator runs in float32: the response within 1e-5 of the float64 answer on the hard games."""
    games, mask = _hard_games()
    tolerance = torch.full((8, 2), 3e-3, dtype=torch.float64)
    tolerance[4], tolerance[5] = 3e-7, 30.0
    exact, _ = eps_best_response(games, mask, tolerance)
    single, _ = eps_best_response(games.float(), mask, tolerance.float())
    assert torch.allclose(single.double(), exact, rtol=0, atol=1e-5)


def test_response_gradient_is_the_softmax_at_the_found_precision_by_finite_differences():
    """The backward pass holds beta fixed: the Jacobian of the response in the payoffs is that of
    ``softmax(beta g)`` at the found beta, checked by central differences of that softmax."""
    games, mask = _hard_games()
    games, mask = games[:3], mask[:3]
    tolerance = torch.full((3, 2), 3e-3, dtype=torch.float64)
    leaf = games.clone().requires_grad_(True)
    ours, beta = eps_best_response(leaf, mask, tolerance)
    weights = torch.randn_like(ours)
    (gradient,) = torch.autograd.grad((ours * weights).sum(), leaf)

    def fixed(g):
        logits = (beta.unsqueeze(2) * g).masked_fill(~mask.unsqueeze(1), -torch.inf)
        return (torch.softmax(logits, dim=2) * weights).sum()

    h = 1e-6
    numeric = torch.zeros_like(games)
    for index in itertools.product(*[range(n) for n in games.shape]):
        up, down = games.clone(), games.clone()
        up[index] += h
        down[index] -= h
        numeric[index] = (fixed(up) - fixed(down)) / (2 * h)
    assert torch.allclose(gradient, numeric, rtol=1e-6, atol=1e-7)
    assert (gradient[~mask.unsqueeze(1).expand_as(gradient)] == 0).all()


def test_response_precision_on_a_two_action_game_has_the_closed_form():
    """Two actions with regrets 0 and r: ``E r = r / (1 + exp(beta r))``, so ``beta = log(r / eps - 1) / r``."""
    r, eps = 0.4, 0.01
    regret = torch.tensor([[0.0], [r]], dtype=torch.float64)  # [A=2, 1]
    real = torch.ones(2, 1, dtype=torch.bool)
    beta = response_precision(regret, real, torch.tensor([eps], dtype=torch.float64))
    assert float(beta) == pytest.approx(math.log(r / eps - 1) / r, rel=1e-13)
