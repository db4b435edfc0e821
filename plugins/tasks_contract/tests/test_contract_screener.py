"""The bonus screener: the bonus family, its gains under the block, the choice, the proposals checked, training.

The gains and the checked choice are compared with solves of the block made here one contract at a time.
"""

from __future__ import annotations

import json

import pytest
import torch

from did_contract import ContractSampler
from did_contract.screener import BonusScreener
from did_contract.search import SCALES, bonus_gains, bonus_grid
from did_contract.task import induced_games, principal_utility
from did_core.cli import main
from did_core.equilibria import Epsilon
from did_core.plugins import create, get_concept
from did_core.tasks import index_context

EPS = Epsilon.of(0.05)


def _context(batch=4, seed=0, **options):
    sampler = ContractSampler(**{"min_actions": 2, "max_actions": 3, "min_outcomes": 2, "max_outcomes": 4, **options})
    context = sampler.sample(batch, torch.Generator().manual_seed(seed))
    return {k: v.double() if v.is_floating_point() else v for k, v in context.items()}


def _utility(context, contract, block, concept):
    eq = block(induced_games(context, contract), context["mask"], concept=concept, eps=EPS)
    return principal_utility(context, contract, eq.sigma)


def test_the_bonus_grid_pays_a_share_of_the_value_span_on_one_outcome():
    context = _context()
    grid = bonus_grid(context)
    batch, m = context["values"].shape
    assert grid.shape == (batch, 3, len(SCALES), m, 2, m)
    for b in range(batch):
        real = context["outcome_mask"][b]
        span = float(context["values"][b][real].max() - context["values"][b][real].min())
        for w in range(m):
            expected = torch.zeros(3, len(SCALES), 2, m, dtype=torch.float64)
            if real[w]:
                for s, scale in enumerate(SCALES):
                    expected[0, s, 0, w] = expected[1, s, 1, w] = scale * span
                    expected[2, s, :, w] = scale * span
            assert torch.allclose(grid[b, :, :, w], expected)


@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_bonus_gains_are_the_utility_changes_under_the_block(concept):
    context = _context(batch=3, seed=1)
    block, c = create("blocks", "exact_newton"), get_concept(concept)
    gains = bonus_gains(context, block, c, EPS)
    grid = bonus_grid(context)
    zero = _utility(context, torch.zeros_like(grid[:, 0, 0, 0]), block, c)
    for r, s in ((0, 4), (2, 9), (1, 12)):
        for w in range(context["values"].shape[1]):
            changed = _utility(context, grid[:, r, s, w], block, c) - zero
            real = context["outcome_mask"][:, w]
            assert torch.allclose(gains[real, r, s, w], changed[real], atol=1e-8)
            assert gains[~real, r, s, w].isnan().all()


def _screener(**options):
    torch.manual_seed(0)
    screener = BonusScreener(ContractSampler(), width=8, depth=1, depth_outcome=1, **options).double()
    screener.bind_exact(create("blocks", "exact_newton"), get_concept("cce"), EPS)
    return screener.eval()


def test_evaluated_it_pays_the_best_scored_bonus_above_the_threshold_or_nothing(monkeypatch):
    context = _context(batch=2)
    screener = _screener(threshold=0.5)
    scores = torch.full((2, 3, len(SCALES), context["values"].shape[1]), -1.0, dtype=torch.float64)
    scores[0, 2, 3, 1] = 2.0  # context 0: bonus of scale 3 on outcome 1 to every agent
    scores[1, 0, 5, 0] = 0.4  # context 1: its best is below the threshold
    monkeypatch.setattr(screener, "scores", lambda _: scores)
    contracts = screener(context)
    assert torch.equal(contracts[0], bonus_grid(context)[0, 2, 3, 1])
    assert torch.equal(contracts[1], torch.zeros_like(contracts[1]))


def test_checked_proposals_are_the_best_of_them_and_no_contract_under_the_block():
    context = _context(batch=6, seed=2)
    screener = _screener(proposals=3)
    block, concept = create("blocks", "exact_newton"), get_concept("cce")
    with torch.no_grad():
        contracts = screener(context)
        scores = screener.scores(context).flatten(1)
    grid = bonus_grid(context).flatten(1, 3)
    chosen = _utility(context, contracts, block, concept)
    zero = _utility(context, torch.zeros_like(contracts), block, concept)
    for b in range(6):
        top = scores[b].topk(3).indices
        one = index_context(context, torch.tensor([b]))
        options = [float(zero[b])] + [float(_utility(one, grid[b, k].unsqueeze(0), block, concept)) for k in top]
        assert float(chosen[b]) == pytest.approx(max(options), abs=1e-9)


def test_trained_through_the_block_it_answers_a_differentiable_mixture():
    context = _context(batch=2)
    screener = _screener().train()
    contracts = screener(context)
    assert contracts.requires_grad and (contracts >= 0).all()
    contracts.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in screener.parameters())


def test_the_imitation_loss_is_the_clipped_squared_error_over_real_bonuses():
    context = _context(batch=2)
    screener = _screener(clip=1.0)
    with torch.no_grad():
        scores = screener.scores(context)
    targets = torch.nan_to_num(scores.clone(), neginf=torch.nan)
    real = targets.isfinite()
    targets[0][real[0]] = targets[0][real[0]] + 0.5  # context 0: every score off by 0.5
    targets[1][real[1]] = -5.0  # context 1: every bonus loses, by more than clip
    expected1 = ((scores[1].clamp_min(-1.0) + 1.0)[real[1]] ** 2).mean()
    with torch.no_grad():
        loss = screener.imitation_loss(context, targets)
    assert float(loss[0]) == pytest.approx(
        float(((scores[0].clamp_min(-1) - targets[0].clamp_min(-1))[real[0]] ** 2).mean()))
    assert float(loss[1]) == pytest.approx(float(expected1))


def test_outcome_permutations_permute_the_answer():
    context = _context(batch=3, seed=4, min_outcomes=4)
    screener = _screener(threshold=-10.0)  # always pays, so the choice itself is compared
    perm = torch.tensor([2, 0, 3, 1])
    permuted = dict(context, transitions=context["transitions"][..., perm], values=context["values"][:, perm],
                    outcome_mask=context["outcome_mask"][:, perm])
    with torch.no_grad():
        assert torch.allclose(screener(permuted), screener(context)[..., perm])


def test_a_trained_screener_with_proposals_is_never_worse_than_no_contract(tmp_path):
    run = tmp_path / "run"
    code = main(["train", "--task", "contract", "--generator", "contract_screener", "--generator-options",
                 "{width: 8, depth: 1, depth_outcome: 1, proposals: 4}", "--steps", "30", "--imitation-contexts",
                 "128", "--imitation-steps", "30", "--eval-contexts", "32", "--run-dir", str(run)])
    assert code == 0
    result = json.loads((run / "eval.json").read_text())["exact_newton"]
    assert result["metric"] >= 0 and result["guarded"]["metric"] == pytest.approx(result["metric"])
    assert result["improved_share"] > 0
