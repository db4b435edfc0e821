"""Tests of the scheduling task: games against brute force, taxes, masking, the 3-player path, the baseline."""

from __future__ import annotations

import itertools

import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.games import excess_over_line_minimum
from did_core.plugins import create, get_concept, registry
from did_core.registry import UnknownNameError
from did_scheduling import SchedulingObjective, SchedulingSampler, TaxGenerator, scheduling_game


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def exact_block():
    try:
        return create("blocks", "exact_cvx")
    except UnknownNameError:
        pytest.skip("no exact block installed (did-plugins-exact-cvx)")


def brute_force(times: list[list[float]]) -> tuple[dict, dict]:
    """Utilities and makespans from the definitions, one joint action at a time."""
    n, m = len(times), len(times[0])
    utilities, makespan = {}, {}
    for a in itertools.product(range(m), repeat=n):
        for i in range(n):
            k = a[i]
            utilities[(i, *a)] = -(times[i][k] + 0.5 * sum(times[j][k] for j in range(n) if j != i and a[j] == k))
        makespan[a] = max(sum(times[i][k] for i in range(n) if a[i] == k) for k in range(m))
    return utilities, makespan


@pytest.mark.parametrize("n_players,machines,padded_to", [(2, 3, 3), (2, 2, 4), (3, 3, 3), (3, 2, 4)])
def test_game_matches_brute_force(n_players: int, machines: int, padded_to: int) -> None:
    times = torch.zeros(1, n_players, padded_to, dtype=torch.float64)
    times[:, :, :machines] = torch.rand(1, n_players, machines, dtype=torch.float64)
    mask = (torch.arange(padded_to) < machines).expand(1, n_players, padded_to)
    utilities, makespan = scheduling_game(times, mask)
    want_u, want_m = brute_force(times[0, :, :machines].tolist())
    for key, value in want_u.items():
        assert utilities[(0, *key)].item() == pytest.approx(value, abs=1e-12)
    for key, value in want_m.items():
        assert makespan[(0, *key)].item() == pytest.approx(value, abs=1e-12)
    real = torch.zeros_like(makespan, dtype=torch.bool)
    real[(0, *[slice(0, machines)] * n_players)] = True
    assert (makespan[~real] == 0).all() and (utilities[:, :, ~real[0]] == 0).all()


def test_sampler_shapes_ranges_and_options() -> None:
    sampler = SchedulingSampler(n_players=3, min_machines=2, max_machines=5)
    context = sampler.sample(64, torch.Generator().manual_seed(1))
    assert context["times"].shape == (64, 3, 5) and context["utilities"].shape == (64, 3, 5, 5, 5)
    assert context["makespan"].shape == (64, 5, 5, 5)
    sizes = sampler.size_of(context)
    assert sizes.min() >= 2 and sizes.max() <= 5 and len(torch.unique(sizes)) > 1
    assert (context["mask"] == context["mask"][:, :1]).all()  # the same machines for every player
    real = context["mask"][:, 0]
    assert ((context["times"] >= 0) & (context["times"] <= 1)).all()
    assert (context["times"][~real.unsqueeze(1).expand_as(context["times"])] == 0).all()
    again = sampler.sample(64, torch.Generator().manual_seed(1))
    assert all(torch.equal(context[k], again[k]) for k in context)
    features, mask = sampler.payoff_features(context)
    assert features.shape == (64, 2, 3, 5, 5, 5) and torch.equal(mask, context["mask"])
    assert SchedulingSampler(makespan_feature=False).payoff_features(context)[0].shape[1] == 1
    with pytest.raises(ValueError, match="min_machines"):
        SchedulingSampler(min_machines=5, max_machines=3)
    with pytest.raises(ValueError, match="unknown_option"):
        SchedulingSampler(unknown_option=1)


def test_registered_under_the_task_name() -> None:
    task = registry("tasks").get("scheduling")
    assert task.provider == "did-plugins-scheduling"
    sampler = task.value.sampler()
    assert isinstance(task.value.generator(sampler), TaxGenerator)
    assert isinstance(task.value.objective(), SchedulingObjective)


def test_taxes_non_negative_and_subtracted() -> None:
    sampler = SchedulingSampler(min_machines=2, max_machines=4)
    context = sampler.sample(16, torch.Generator().manual_seed(2))
    objective = SchedulingObjective()
    for normalize in (True, False):
        x = TaxGenerator(sampler, width=8, depth=1, normalize=normalize)(context)
        assert x.shape == context["utilities"].shape and (x <= 0).all()
        taxes = objective.taxes(context, x)
        assert (taxes >= 0).all() and torch.allclose(taxes, -x)
        games, mask = objective.induce(context, x)
        assert torch.allclose(games, context["utilities"] - taxes) and torch.equal(mask, context["mask"])
    # A positive entry (a subsidy, only a polish can propose one) is clipped: taxes stay >= 0.
    games, _ = objective.induce(context, torch.ones_like(x))
    assert torch.equal(games, context["utilities"])


def test_normalisation_leaves_a_tax_free_action_and_the_equilibrium() -> None:
    sampler = SchedulingSampler(min_machines=2, max_machines=3)
    context = sampler.sample(6, torch.Generator().manual_seed(3))
    jm = objective_jm(context).bool()
    raw = torch.rand_like(context["utilities"]) * jm
    fixed = excess_over_line_minimum(raw, context["mask"])
    generated = -TaxGenerator(sampler, width=8, depth=1)(context).detach()
    for taxes in (fixed, generated):
        assert (taxes >= 0).all() and (taxes[~jm] == 0).all()
        big = taxes.masked_fill(~jm, float("inf"))
        assert (big[:, 0].amin(dim=1)[jm[:, 0].any(dim=1)].abs() < 1e-6).all()
        assert (big[:, 1].amin(dim=2)[jm[:, 1].any(dim=2)].abs() < 1e-6).all()
    objective, block = SchedulingObjective(), exact_block()
    eqs = [block(objective.induce(context, -t)[0].double(), context["mask"], concept=get_concept("cce"), eps=0.05)
           for t in (raw, fixed)]
    assert torch.allclose(eqs[0].sigma, eqs[1].sigma, atol=1e-6)


def objective_jm(context: dict) -> torch.Tensor:
    return SchedulingObjective().intervention_mask(context).to(torch.float32)


def test_padded_equals_cut() -> None:
    sampler = SchedulingSampler(min_machines=3, max_machines=3)
    cut = sampler.sample(4, torch.Generator().manual_seed(4))
    times = torch.cat([cut["times"], torch.zeros(4, 2, 2)], dim=2)
    mask = torch.cat([cut["mask"], torch.zeros(4, 2, 2, dtype=torch.bool)], dim=2)
    utilities, makespan = scheduling_game(times, mask)
    padded = {"times": times, "mask": mask, "utilities": utilities, "makespan": makespan}
    assert torch.equal(utilities[:, :, :3, :3], cut["utilities"]) and torch.equal(makespan[:, :3, :3], cut["makespan"])
    generator = TaxGenerator(SchedulingSampler(min_machines=2, max_machines=5), width=8, depth=2)
    with torch.no_grad():
        x_cut, x_pad = generator(cut), generator(padded)
    assert torch.allclose(x_pad[:, :, :3, :3], x_cut, atol=1e-6) and (x_pad[:, :, 3:] == 0).all()
    objective, block = SchedulingObjective(), exact_block()
    eq_cut = block(objective.induce(cut, x_cut)[0].double(), cut["mask"], concept=get_concept("cce"), eps=0.05)
    eq_pad = block(objective.induce(padded, x_pad)[0].double(), mask, concept=get_concept("cce"), eps=0.05)
    assert torch.allclose(eq_pad.sigma[:, :3, :3], eq_cut.sigma, atol=1e-6)
    assert eq_pad.sigma[:, 3:].abs().max() < 1e-9 and eq_pad.sigma[:, :, 3:].abs().max() < 1e-9
    assert torch.allclose(objective.value(padded, x_pad, eq_pad), objective.value(cut, x_cut, eq_cut), atol=1e-6)


def test_generator_is_equivariant_in_machines_and_players() -> None:
    sampler = SchedulingSampler(n_players=3, min_machines=3, max_machines=3)
    context = sampler.sample(3, torch.Generator().manual_seed(5))
    generator = TaxGenerator(sampler, width=8, depth=2)

    def permuted(perm_m: torch.Tensor, perm_p: list[int]) -> dict:
        times = context["times"][:, perm_p][:, :, perm_m]
        utilities, makespan = scheduling_game(times, context["mask"])
        return {"times": times, "mask": context["mask"], "utilities": utilities, "makespan": makespan}

    with torch.no_grad():
        x = generator(context)
        perm = torch.tensor([2, 0, 1])
        y = generator(permuted(perm, [0, 1, 2]))
        assert torch.allclose(y, x[:, :, perm][:, :, :, perm][:, :, :, :, perm], atol=1e-5)
        z = generator(permuted(torch.arange(3), [1, 2, 0]))
        assert torch.allclose(z, x[:, [1, 2, 0]].permute(0, 1, 3, 4, 2), atol=1e-5)


def test_loss_ramps_the_tax_weight_and_reaches_the_generator() -> None:
    objective = SchedulingObjective(lam=0.5, lam_start=0.1, ramp=0.5)
    assert objective.options.weight(0.0) == pytest.approx(0.1)
    assert objective.options.weight(0.25) == pytest.approx(0.3)
    assert objective.options.weight(0.9) == pytest.approx(0.5)
    assert SchedulingObjective.report_change and SchedulingObjective.minimize
    sampler = SchedulingSampler(n_players=3, min_machines=2, max_machines=3)
    context = sampler.sample(4, torch.Generator().manual_seed(6))
    generator = TaxGenerator(sampler, width=8, depth=1, normalize=False)
    x = generator(context)
    games, mask = objective.induce(context, x)
    eq = exact_block()(games.double(), mask, concept=get_concept("cce"), eps=0.05)
    loss, scalars = objective.loss(context, x, eq, progress=1.0)
    want = objective.value(context, x, eq).mean() + 0.5 * objective.taxes_paid(context, x, eq).mean()
    assert float(loss.detach()) == pytest.approx(float(want.detach())) and scalars["lam"] == 0.5
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_three_players_end_to_end_and_zero_baseline_change(tmp_path) -> None:
    exact_block()
    from did_core.config import resolve_train_config
    from did_core.evaluate import evaluate_generator
    from did_core.train import build_components, train

    cfg = resolve_train_config({
        "task": "scheduling", "block": "exact_cvx", "exact_block": "exact_cvx", "steps": 2, "batch_size": 4,
        "eval_contexts": 6, "log_every": 1, "threads": 1,
        "sampler_options": {"n_players": 3, "min_machines": 2, "max_machines": 3},
        "generator_options": {"width": 8, "depth": 1},
    })
    result = train(cfg, tmp_path / "run")
    entry = result["exact_cvx"].as_dict()
    assert entry["metric_name"] == "makespan change" and entry["contexts"] == 6
    assert torch.isfinite(torch.tensor(entry["metric"])) and (tmp_path / "run" / "eval.json").exists()
    # The naive baseline scores exactly 0 change and improves nothing.
    parts = build_components(cfg)
    parts.generator = _Baseline(parts.objective)
    zero_result = evaluate_generator(cfg, parts, ["exact_cvx"], contexts=6, seed=1)["exact_cvx"]
    zero = zero_result.as_dict()
    assert zero["metric"] == 0.0 and zero["improved_share"] == 0.0
    # The report carries the task's bound against the same baseline: no better than any generator's metric.
    assert entry["bound"]["contexts"] == 6 and entry["bound"]["metric"] <= entry["metric"] + 1e-12
    assert zero["bound"]["metric"] <= 0.0 and set(zero["bound"]["per_size"]) == set(zero["per_size"])
    from did_core.report import build_report, markdown_table
    table = markdown_table(build_report("scheduling", cfg.model_dump(), {"exact_cvx": zero_result}, 6, 1, argv=[]))
    assert f"| {zero['bound']['metric']:.3f} (" in table and "bound (exact_cvx)" in table


class _Baseline(torch.nn.Module):
    def __init__(self, objective: SchedulingObjective) -> None:
        super().__init__()
        self.objective = objective

    def forward(self, context: dict) -> torch.Tensor:
        return self.objective.baseline_intervention(context)


def test_relative_eps_taxes_cannot_sharpen_by_scaling() -> None:
    """docs/mathematics.md 6, fact (1): scaling a tax by c changes E M less and less; under absolute eps it sharpens."""
    sampler = SchedulingSampler(min_machines=3, max_machines=3)
    context = sampler.sample(8, torch.Generator().manual_seed(7))
    objective, block = SchedulingObjective(), exact_block()
    # Tax every machine but the one of the best joint action, for each player.
    best = context["makespan"].flatten(1).argmin(dim=1)
    target = torch.stack(torch.unravel_index(best, (3, 3)), dim=1)
    off = torch.stack([(torch.arange(3).view(1, 3, 1) != target[:, 0].view(-1, 1, 1)).expand(-1, 3, 3),
                       (torch.arange(3).view(1, 1, 3) != target[:, 1].view(-1, 1, 1)).expand(-1, 3, 3)], 1).float()

    def expected_makespan(c: float, eps: Epsilon) -> float:
        games, mask = objective.induce(context, -c * off)
        return float(objective.value(context, -c * off, block(games.double(), mask, concept=get_concept("cce"), eps=eps)).mean())

    relative, absolute = Epsilon(0.05, True), Epsilon(0.05, False)
    assert expected_makespan(1.0, relative) < expected_makespan(0.0, relative)
    assert abs(expected_makespan(100.0, relative) - expected_makespan(10.0, relative)) < 2e-3
    assert expected_makespan(100.0, absolute) < expected_makespan(10.0, absolute) - 1e-3


@pytest.mark.parametrize("n_players,machines,padded_to", [(2, 3, 3), (2, 2, 4), (3, 2, 4)])
def test_bound_is_the_brute_force_shortest_makespan_and_no_tax_beats_it(n_players, machines, padded_to) -> None:
    times = torch.zeros(2, n_players, padded_to, dtype=torch.float64)
    times[:, :, :machines] = torch.rand(2, n_players, machines, dtype=torch.float64)
    mask = (torch.arange(padded_to) < machines).expand(2, n_players, padded_to).clone()
    utilities, makespan = scheduling_game(times, mask)
    context = {"times": times, "mask": mask, "utilities": utilities, "makespan": makespan}
    objective = SchedulingObjective()
    bound = objective.bound(context)
    for b in range(2):
        assert bound[b].item() == pytest.approx(min(brute_force(times[b, :, :machines].tolist())[1].values()))
    block = exact_block()
    for scale in (0.0, 1.0, 10.0):
        x = -scale * torch.rand_like(utilities)
        eq = block(*objective.induce(context, x), concept=get_concept("cce"), eps=Epsilon(0.05))
        assert (objective.value(context, x, eq) >= bound - 1e-9).all()
