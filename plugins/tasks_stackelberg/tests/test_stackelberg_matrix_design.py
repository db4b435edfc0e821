"""The matrix-design task: sampler shapes, masks, goals and reproducibility, payments made against a
hand computation, the payment generator's sign and padding, and dominance making promises free."""

from __future__ import annotations

import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.plugins import create, get_concept
from did_stackelberg import MatrixDesignObjective, MatrixDesignSampler, PaymentGenerator
from did_stackelberg.matrix_design import goal_value, payments, payments_made

MT = torch.tensor([[[3.0, 6.0], [4.0, 2.0]], [[3.0, 4.0], [6.0, 2.0]]], dtype=torch.float64)


def _mt_context() -> dict[str, torch.Tensor]:
    return {"games": MT.unsqueeze(0), "mask": torch.ones(1, 2, 2, dtype=torch.bool),
            "goal": torch.tensor([[[0.0, 1.0], [1.0, 0.0]]], dtype=torch.float64), "welfare": torch.tensor([False])}


@pytest.mark.parametrize("goal", ["target", "welfare", "mixed"])
def test_sampler_shapes_masks_goals(goal):
    sampler = MatrixDesignSampler(min_actions=2, max_actions=4, goal=goal)
    context = sampler.sample(32, torch.Generator().manual_seed(0))
    assert context["games"].shape == (32, 2, 4, 4) and context["mask"].shape == (32, 2, 4)
    assert context["goal"].shape == (32, 4, 4) and context["welfare"].shape == (32,)
    real = context["mask"][:, 0, :, None] & context["mask"][:, 1, None, :]
    assert (context["games"][~real.unsqueeze(1).expand_as(context["games"])] == 0).all()
    assert (context["goal"][~real] == 0).all()
    welfare = context["welfare"]
    assert torch.allclose(context["goal"][welfare], context["games"][welfare].sum(dim=1))
    targets = context["goal"][~welfare]
    assert ((targets == 0) | (targets == 1)).all() and (targets.flatten(1).sum(dim=1) >= 1).all()
    if goal == "mixed":
        assert 0 < int(welfare.sum()) < 32
    assert sampler.size_of(context).shape == (32,) and sampler.extents(context).shape == (32, 2)


def test_sampler_is_reproducible():
    sampler = MatrixDesignSampler(n_players=3, min_actions=2, max_actions=3)
    one, two = (sampler.sample(5, torch.Generator().manual_seed(9)) for _ in range(2))
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert one["games"].shape == (5, 3, 3, 3, 3)


def test_payments_made_by_hand():
    context = _mt_context()
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]], [[0.0, 3.0], [0.0, 4.0]]]], dtype=torch.float64)
    sigma = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]], dtype=torch.float64)
    # negative promises count as 0: row 0.1*1 + 0.3*0.5, column 0.2*3 + 0.4*4
    assert float(payments_made(context, x, sigma)) == pytest.approx(0.1 + 0.15 + 0.6 + 1.6)
    assert float(goal_value(context, sigma)) == pytest.approx(0.5)
    assert (payments(context, x) >= 0).all()
    objective = MatrixDesignObjective(lam=0.5)
    games, _ = objective.induce(context, x)
    assert torch.allclose(games, MT.unsqueeze(0) + x.clamp_min(0))


def test_dominance_promises_are_never_due():
    """Promising 4 (row at (A, A), column at (B, B)) makes A dominant for the row and B for the column player:
    at absolute eps 0.01 the followers play (A, B) and little is paid (0.052: the eps-ME followers still
    visit the promised cells; the per-instance optimum of test_stackelberg_design pays far less)."""
    context = _mt_context()
    x = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    x[0, 0, 0, 0], x[0, 1, 1, 1] = 4.0, 4.0 + 1.0
    objective = MatrixDesignObjective()
    games, mask = objective.induce(context, x)
    eq = create("blocks", "exact_newton")(games, mask, concept=get_concept("cce"), eps=Epsilon(0.01, relative=False))
    assert float(eq.sigma[0, 0, 1]) >= 0.95
    assert float(payments_made(context, x, eq.sigma)) <= 0.06
    baseline = create("blocks", "exact_newton")(MT.unsqueeze(0), concept=get_concept("cce"), eps=Epsilon(0.01, relative=False))
    assert float(goal_value(context, baseline.sigma)) < 0.7


def test_objective_loss_ramps_the_payment_weight():
    context = _mt_context()
    objective = MatrixDesignObjective(lam=1.0, lam_start=0.0, ramp=0.5)
    x = torch.full((1, 2, 2, 2), 0.5, dtype=torch.float64)
    games, mask = objective.induce(context, x)
    eq = create("blocks", "exact_newton")(games, mask, concept=get_concept("cce"), eps=0.05)
    _, start = objective.loss(context, x, eq, 0.0)
    _, middle = objective.loss(context, x, eq, 0.25)
    loss, end = objective.loss(context, x, eq, 0.9)
    assert (start["lam"], middle["lam"], end["lam"]) == (0.0, 0.5, 1.0)
    assert float(loss) == pytest.approx(-(end["goal"] - end["paid"]))
    assert float(objective.value(context, x, eq)) == pytest.approx(end["goal"] - end["paid"])
    assert torch.equal(objective.baseline_intervention(context), torch.zeros(1, 2, 2, 2, dtype=torch.float64))


def test_payment_generator_is_non_negative_and_zero_on_padding():
    sampler = MatrixDesignSampler(min_actions=2, max_actions=4)
    generator = PaymentGenerator(sampler, width=8, depth=1)
    context = sampler.sample(6, torch.Generator().manual_seed(2))
    x = generator(context)
    real = (context["mask"][:, 0, :, None] & context["mask"][:, 1, None, :]).unsqueeze(1).expand_as(x)
    assert x.shape == context["games"].shape and (x >= 0).all() and (x[~real] == 0).all() and (x[real] > 0).any()
    # gauge-fixed: every line of a player's own actions has a cell that pays nothing
    for b in range(6):
        n1, n2 = (int(c) for c in context["mask"][b].sum(dim=1))
        assert torch.allclose(x[b, 0, :n1, :n2].amin(dim=0), torch.zeros(n2), atol=1e-6)
        assert torch.allclose(x[b, 1, :n1, :n2].amin(dim=1), torch.zeros(n1), atol=1e-6)
    plain = PaymentGenerator(sampler, width=8, depth=1, normalize=False)(context)
    assert (plain[real] > 0).all()
