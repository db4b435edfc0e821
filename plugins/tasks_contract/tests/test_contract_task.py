"""The contract task: sampler, induced game, utility, loss, generator equivariance and masking."""

from __future__ import annotations

import itertools

import pytest
import torch

from did_contract import (
    ContractGenerator,
    ContractObjective,
    ContractSampler,
    induced_games,
    outcome_distribution,
    payment_weight,
    principal_utility,
)
from did_core.blocks import Equilibrium
from did_core.plugins import create, get_concept, registry


def _double(context):
    return {k: (v.double() if v.is_floating_point() else v) for k, v in context.items()}


def _full_context(batch=3, n=3, m=4, seed=0, players=2):
    sampler = ContractSampler(n_players=players, min_actions=n, max_actions=n, min_outcomes=m, max_outcomes=m)
    return _double(sampler.sample(batch, torch.Generator().manual_seed(seed)))


@pytest.fixture(scope="module")
def exact():
    return create("blocks", "exact_cvx")


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return ContractGenerator(width=8, depth=2, depth_outcome=1).double()


def test_registered_under_contract():
    task = registry("tasks").get("contract")
    assert task.provider == "did-plugins-contract" and task.value.sampler is ContractSampler
    assert task.value.polish_budget == 400 and set(task.value.train_profiles) == {"quick", "paper"}
    assert task.value.instances is not None
    assert registry("commands").get("design").provider == "did-core"  # did design is core's


def test_sampler_shapes_ranges_and_masks():
    sampler = ContractSampler(min_actions=2, max_actions=5, min_outcomes=2, max_outcomes=6)
    ctx = sampler.sample(200, torch.Generator().manual_seed(1))
    assert ctx["costs"].shape == (200, 2, 5, 5) and ctx["transitions"].shape == (200, 5, 5, 6)
    assert ctx["values"].shape == (200, 6) and ctx["mask"].shape == (200, 2, 5)
    assert ctx["outcome_mask"].shape == (200, 6)
    mask, om = ctx["mask"], ctx["outcome_mask"]
    counts = mask.sum(2)
    assert (counts[:, 0] == counts[:, 1]).all() and counts.min() == 2 and counts.max() == 5
    assert om.sum(1).min() == 2 and om.sum(1).max() == 6
    assert torch.equal(sampler.size_of(ctx), counts.amax(1))
    jm = mask[:, 0, :, None] & mask[:, 1, None, :]
    sums = ctx["transitions"].sum(-1)
    assert torch.allclose(sums[jm], torch.ones(()), atol=1e-5) and (sums[~jm] == 0).all()
    assert (ctx["transitions"] >= 0).all() and (ctx["transitions"] * ~om[:, None, None] == 0).all()
    assert (ctx["costs"] >= 0).all() and (ctx["costs"] <= 1).all()
    assert (ctx["costs"][~jm.unsqueeze(1).expand(-1, 2, -1, -1)] == 0).all()
    assert (ctx["values"] >= 0).all() and (ctx["values"] <= 10).all() and (ctx["values"][~om] == 0).all()
    again = sampler.sample(200, torch.Generator().manual_seed(1))
    assert all(torch.equal(ctx[k], again[k]) for k in ctx)


def test_sampler_options_and_profiles():
    assert ContractSampler.PROFILES["quick"]["max_actions"] <= 4
    assert ContractSampler.PROFILES["paper"] == {"min_actions": 2, "max_actions": 16, "min_outcomes": 2,
                                                 "max_outcomes": 10}
    with pytest.raises(ValueError, match="min_outcomes"):
        ContractSampler(min_outcomes=5, max_outcomes=3)
    with pytest.raises(ValueError, match="unknown_field"):
        ContractSampler(unknown_field=1)
    mixed = ContractSampler(same_actions=False, n_players=3, max_actions=4)
    ctx = mixed.sample(64, torch.Generator().manual_seed(0))
    assert ctx["costs"].shape == (64, 3, 4, 4, 4)
    assert (ctx["mask"].sum(2)[:, 0] != ctx["mask"].sum(2)[:, 1]).any()


def _brute_force(ctx, t, sigma):
    """Per context: induced payoffs u[i][a1][a2] and U, by explicit loops."""
    out_games, out_u = [], []
    for b in range(ctx["costs"].shape[0]):
        n1, n2 = (int(x) for x in ctx["mask"][b].sum(1))
        m = int(ctx["outcome_mask"][b].sum())
        games = torch.zeros(2, n1, n2, dtype=torch.float64)
        utility = 0.0
        for a1, a2 in itertools.product(range(n1), range(n2)):
            for i in range(2):
                pay = sum(float(ctx["transitions"][b, a1, a2, w]) * float(t[b, i, w]) for w in range(m))
                games[i, a1, a2] = -float(ctx["costs"][b, i, a1, a2]) + pay
            for w in range(m):
                p = float(ctx["transitions"][b, a1, a2, w])
                utility += float(sigma[b, a1, a2]) * p * (float(ctx["values"][b, w]) - float(t[b, 0, w] + t[b, 1, w]))
        out_games.append(games)
        out_u.append(utility)
    return out_games, torch.tensor(out_u, dtype=torch.float64)


def test_induced_game_and_utility_match_brute_force():
    sampler = ContractSampler(min_actions=2, max_actions=3, min_outcomes=2, max_outcomes=3, same_actions=False)
    ctx = _double(sampler.sample(6, torch.Generator().manual_seed(3)))
    t = torch.rand(6, 2, 3, dtype=torch.float64) * ctx["outcome_mask"][:, None]
    jm = ctx["mask"][:, 0, :, None] & ctx["mask"][:, 1, None, :]
    sigma = torch.rand(6, 3, 3, dtype=torch.float64) * jm
    sigma = sigma / sigma.sum((1, 2), keepdim=True)
    games_bf, utility_bf = _brute_force(ctx, t, sigma)
    games = induced_games(ctx, t)
    for b, g in enumerate(games_bf):
        n1, n2 = g.shape[1:]
        assert torch.allclose(games[b, :, :n1, :n2], g)
        assert (games[b, :, n1:] == 0).all() and (games[b, :, :, n2:] == 0).all()
    assert torch.allclose(principal_utility(ctx, t, sigma), utility_bf)
    q = outcome_distribution(ctx, sigma)
    assert torch.allclose(q.sum(1), torch.ones(6, dtype=torch.float64))


def test_hand_computed_instance():
    # One agent-pair, 2x2 actions, 2 outcomes, numbers small enough to check by hand.
    ctx = {
        "costs": torch.tensor([[[[0.0, 1.0], [0.5, 0.0]], [[0.2, 0.0], [0.0, 0.3]]]], dtype=torch.float64),
        "transitions": torch.tensor([[[[1.0, 0.0], [0.5, 0.5]], [[0.25, 0.75], [0.0, 1.0]]]], dtype=torch.float64),
        "values": torch.tensor([[4.0, 0.0]], dtype=torch.float64),
        "mask": torch.ones(1, 2, 2, dtype=torch.bool),
        "outcome_mask": torch.ones(1, 2, dtype=torch.bool),
    }
    t = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    games = induced_games(ctx, t)
    # agent 0 at (0,1): -1 + 0.5*2 = 0; agent 1 at (1,0): -0 + 0.75*1 = 0.75
    assert games[0, 0, 0, 1] == 0.0 and games[0, 1, 1, 0] == 0.75
    assert games[0, 0, 0, 0] == 2.0 and games[0, 1, 1, 1] == 0.7
    sigma = torch.tensor([[[0.5, 0.0], [0.0, 0.5]]], dtype=torch.float64)
    # q = (0.5, 0.5); net value per outcome: (4 - 2, 0 - 1) -> U = 0.5*2 + 0.5*(-1) = 0.5
    assert torch.allclose(principal_utility(ctx, t, sigma), torch.tensor([0.5], dtype=torch.float64))


def test_objective_loss_ramp_and_baseline():
    objective = ContractObjective(lam_start=0.2, ramp=0.5)
    assert objective.minimize is False and objective.report_change is True
    assert payment_weight(0.0, 0.2, 0.5) == pytest.approx(0.2)
    assert payment_weight(0.25, 0.2, 0.5) == pytest.approx(0.6)
    assert payment_weight(0.9, 0.2, 0.5) == 1.0 and payment_weight(0.3, 0.2, 0.0) == 1.0
    ctx = _full_context()
    t = torch.rand(3, 2, 4, dtype=torch.float64)
    sigma = torch.softmax(torch.randn(3, 9, dtype=torch.float64), 1).view(3, 3, 3)
    eq = Equilibrium(sigma, None, torch.zeros(3, 2), "cce")
    loss_end, scalars = objective.loss(ctx, t, eq, 1.0)
    assert torch.allclose(loss_end, -objective.value(ctx, t, eq).mean())
    loss_start, _ = objective.loss(ctx, t, eq, 0.0)
    q = outcome_distribution(ctx, sigma)
    expected = -((q * ctx["values"]).sum(1).mean() - 0.2 * (q * t.sum(1)).sum(1).mean())
    assert torch.allclose(loss_start, expected)
    assert scalars["lam"] == 1.0
    base = objective.baseline_intervention(ctx)
    assert base.shape == (3, 2, 4) and (base == 0).all()
    assert objective.intervention_mask(ctx).shape == (3, 2, 4)


def test_generator_output_is_nonnegative_and_zero_on_padding(generator):
    sampler = ContractSampler(max_actions=4, max_outcomes=5)
    ctx = _double(sampler.sample(16, torch.Generator().manual_seed(0)))
    t = generator(ctx)
    assert t.shape == (16, 2, 5) and (t >= 0).all()
    assert (t * ~ctx["outcome_mask"][:, None] == 0).all()
    # shift_min: every agent is paid nothing on its cheapest outcome.
    masked = torch.where(ctx["outcome_mask"][:, None], t, torch.inf)
    assert (masked.amin(-1) == 0).all()
    plain = ContractGenerator(width=4, depth=1, depth_outcome=0, shift_min=False)
    assert (plain(ctx) > 0).sum() == ctx["outcome_mask"].sum() * 2


def test_generator_equivariance(generator):
    ctx = _full_context(batch=2, n=3, m=4)
    t = generator(ctx)
    g = torch.Generator().manual_seed(5)
    pa, pb, pw = (torch.randperm(3, generator=g), torch.randperm(3, generator=g), torch.randperm(4, generator=g))
    # each agent's actions: contracts unchanged
    perm = dict(ctx)
    perm["costs"] = ctx["costs"][:, :, pa][:, :, :, pb]
    perm["transitions"] = ctx["transitions"][:, pa][:, :, pb]
    assert torch.allclose(generator(perm), t, atol=1e-10)
    # agents: swap the players (their costs and the action axes); contracts swap
    swap = dict(ctx)
    swap["costs"] = ctx["costs"].flip(1).transpose(2, 3)
    swap["transitions"] = ctx["transitions"].transpose(1, 2)
    assert torch.allclose(generator(swap), t.flip(1), atol=1e-10)
    # outcomes: contracts permute the same way
    out = dict(ctx)
    out["transitions"] = ctx["transitions"][..., pw]
    out["values"] = ctx["values"][:, pw]
    assert torch.allclose(generator(out), t[..., pw], atol=1e-10)


def test_generator_equivariance_three_agents():
    torch.manual_seed(1)
    gen = ContractGenerator(width=6, depth=1, depth_outcome=1).double()
    ctx = _full_context(batch=2, n=2, m=3, players=3)
    t = gen(ctx)
    order = [2, 0, 1]
    perm = dict(ctx)
    perm["costs"] = ctx["costs"][:, order].permute(0, 1, *[2 + p for p in order])
    perm["transitions"] = ctx["transitions"].permute(0, *[1 + p for p in order], 4)
    assert torch.allclose(gen(perm), t[:, order], atol=1e-10)


def _cut(ctx, n1, n2, m):
    return {"costs": ctx["costs"][:, :, :n1, :n2], "transitions": ctx["transitions"][:, :n1, :n2, :m],
            "values": ctx["values"][:, :m], "mask": ctx["mask"][:, :, : max(n1, n2)],
            "outcome_mask": ctx["outcome_mask"][:, :m]}


def test_padded_equals_cut(generator, exact):
    sampler = ContractSampler(min_actions=2, max_actions=4, min_outcomes=2, max_outcomes=5)
    ctx = _double(sampler.sample(24, torch.Generator().manual_seed(7)))
    sizes = ctx["mask"].sum(2)
    b = int(((sizes[:, 0] < 4) & (ctx["outcome_mask"].sum(1) < 5)).nonzero()[0])
    one = {k: v[b : b + 1] for k, v in ctx.items()}
    # garbage in the padding must not matter
    noisy = dict(one)
    jm = one["mask"][:, 0, :, None] & one["mask"][:, 1, None, :]
    noisy["costs"] = torch.where(jm.unsqueeze(1), one["costs"], 7.0)
    n, m = int(sizes[b, 0]), int(one["outcome_mask"].sum())
    cut = _cut(one, n, n, m)
    t_pad, t_noisy, t_cut = generator(one), generator(noisy), generator(cut)
    assert torch.allclose(t_pad[..., :m], t_cut, atol=1e-10) and (t_pad[..., m:] == 0).all()
    assert torch.allclose(t_noisy, t_pad, atol=1e-10)
    objective = ContractObjective()
    games_pad, mask_pad = objective.induce(one, t_pad)
    games_cut, mask_cut = objective.induce(cut, t_cut)
    assert torch.allclose(games_pad[:, :, :n, :n], games_cut)
    eq_pad = exact(games_pad, mask_pad, concept=get_concept("cce"), eps=0.05)
    eq_cut = exact(games_cut, mask_cut, concept=get_concept("cce"), eps=0.05)
    assert torch.allclose(eq_pad.sigma[:, :n, :n], eq_cut.sigma, atol=1e-6)
    assert torch.allclose(objective.value(one, t_pad, eq_pad), objective.value(cut, t_cut, eq_cut), atol=1e-6)


def _edge_context(kind):
    ctx = _full_context(batch=1, n=2, m=3, seed=11)
    if kind == "zero_costs":
        ctx["costs"] = torch.zeros_like(ctx["costs"])
    elif kind == "deterministic":
        ctx["transitions"] = torch.nn.functional.one_hot(torch.tensor([[[0, 1], [2, 0]]]), 3).double()
    elif kind == "worthless_outcome":
        ctx["values"][0, 1] = 0.0
    return ctx


@pytest.mark.parametrize("kind", ["zero_costs", "deterministic", "worthless_outcome"])
def test_edge_contexts_train_and_evaluate(kind, generator, exact):
    ctx = _edge_context(kind)
    objective = ContractObjective()
    generator.zero_grad()
    t = generator(ctx)
    games, mask = objective.induce(ctx, t)
    eq = exact(games.double(), mask, concept=get_concept("cce"), eps=0.05)
    loss, scalars = objective.loss(ctx, t, eq, 0.3)
    loss.backward()
    grads = [p.grad for p in generator.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    base = objective.baseline_intervention(ctx)
    eq0 = exact(*objective.induce(ctx, base), concept=get_concept("cce"), eps=0.05)
    u0 = objective.value(ctx, base, eq0)
    assert torch.isfinite(u0).all() and torch.allclose(eq0.sigma.sum(), torch.tensor(1.0, dtype=torch.float64))
    if kind == "zero_costs":
        # no contract, no costs: every joint action is an equilibrium; max entropy is uniform
        assert torch.allclose(eq0.sigma, torch.full_like(eq0.sigma, 0.25), atol=1e-6)
    if kind == "deterministic":
        # paying agent 0 only on outcome 1 (reached only by (0, 1)) makes that its payoff there
        t1 = torch.zeros(1, 2, 3, dtype=torch.float64)
        t1[0, 0, 1] = 5.0
        g1, _ = objective.induce(ctx, t1)
        assert torch.allclose(g1[0, 0, 0, 1], 5.0 - ctx["costs"][0, 0, 0, 1])
        assert torch.allclose(g1[0, 0, 1, 1], -ctx["costs"][0, 0, 1, 1])


def test_negative_payments_count_as_zero():
    objective = ContractObjective()
    ctx = _full_context(batch=2, n=2, m=3)
    t = torch.rand(2, 2, 3, dtype=torch.float64)
    t_neg = t.clone()
    t_neg[0, 0, 1] = -5.0
    t_zero = t.clone()
    t_zero[0, 0, 1] = 0.0
    assert torch.equal(objective.induce(ctx, t_neg)[0], objective.induce(ctx, t_zero)[0])
    sigma = torch.full((2, 2, 2), 0.25, dtype=torch.float64)
    eq = Equilibrium(sigma, None, torch.zeros(2, 2), "cce")
    assert torch.equal(objective.value(ctx, t_neg, eq), objective.value(ctx, t_zero, eq))


def test_bound_is_the_best_joint_action_value_and_no_contract_beats_it(exact):
    context = _full_context(batch=2, n=3, m=4, seed=3)
    objective = ContractObjective()
    bound = objective.bound(context)
    for b in range(2):
        best = max(sum(float(context["transitions"][b, a1, a2, w] * context["values"][b, w]) for w in range(4))
                   for a1, a2 in itertools.product(range(3), repeat=2))
        assert bound[b].item() == pytest.approx(best)
    padded = _double(ContractSampler(min_actions=2, max_actions=4, min_outcomes=2, max_outcomes=5)
                     .sample(6, torch.Generator().manual_seed(1)))
    assert (padded["mask"].sum(dim=2) < 4).any()
    for ctx in (context, padded):
        real = objective.intervention_mask(ctx).double()
        for scale in (0.0, 1.0, 5.0):
            t = scale * torch.rand(real.shape, dtype=torch.float64) * real
            eq = exact(*objective.induce(ctx, t), concept=get_concept("cce"), eps=0.05)
            assert (objective.value(ctx, t, eq) <= objective.bound(ctx) + 1e-9).all()
    # padded joint actions (expected value 0) never count, even when every real one is worth less
    losing = dict(padded, values=(padded["values"] - 20.0) * padded["outcome_mask"])
    assert (objective.bound(losing) < -9.0).all()
