"""Training a contract generator on the guarded loss and by imitating the per-instance search.

Checked against independent computations: the guarded gradient against the plain loss's gradient on the
contexts the contract wins (computed from the block's answers here), the imitation answers against
``optimise_contracts`` called on the same contexts, the imitation loss against its definition.
"""

from __future__ import annotations

import pytest
import torch

import did_core.imitation as imitation
from did_contract import ContractObjective, ContractSampler
from did_contract.search import optimise_contracts
from did_contract.task import payment_unit
from did_core.components import build_components
from did_core.config import resolve_train_config
from did_core.plugins import create, get_concept
from did_core.runs import RunDir, RunDirError
from did_core.tasks import index_context
from did_core.train import train, training_step

QUICK = {"task": "contract", "block": "exact_newton", "concept": "cce", "batch_size": 8, "eval_contexts": 8,
         "log_every": 1, "checkpoint_every": 5, "generator_options": {"width": 8, "depth": 1, "depth_outcome": 1}}


def _parts(**flags):
    cfg = resolve_train_config({**QUICK, **flags})
    return cfg, build_components(cfg)


def _gradient(parts):
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                      for p in parts.generator.parameters()])


@pytest.mark.parametrize("weight", [0.0, 0.25])
def test_the_guarded_loss_weighs_the_contexts_no_contract_beats(weight):
    cfg, parts = _parts(losing_weight=weight)
    torch.manual_seed(3)
    with torch.no_grad():  # a generator that pays enough to win some contexts and lose others
        parts.generator.head.linear.weight.mul_(4.0)
    context = parts.sampler.sample(16, torch.Generator().manual_seed(5))
    parts.generator.zero_grad()
    scalars = training_step(parts, context, 0.0, 1, losing_weight=weight)
    guarded = _gradient(parts)

    # Independently: which contexts does the generator's contract win under the block, at this payment weight?
    block, concept, objective = parts.block, parts.concept, parts.objective
    lam = objective.options.weight(0.0)
    with torch.no_grad():
        x = parts.generator(context)
        values = []
        for t in (x, torch.zeros_like(x)):
            eq = block(*objective.induce(context, t), concept=concept, eps=parts.eps)
            q = torch.einsum("bij,bijm->bm", eq.sigma, context["transitions"].to(eq.sigma.dtype))
            values.append((q * (context["values"] - lam * t.sum(dim=1))).sum(dim=1))
    wins = values[0] > values[1]
    assert 0 < int(wins.sum()) < 16
    assert scalars["losing"] == pytest.approx(float((~wins).double().mean()))
    parts.generator.zero_grad()
    for chosen, share in ((wins, 1.0), (~wins, weight)):
        if share and chosen.any():
            part = index_context(context, chosen.nonzero().view(-1))
            eq = parts.scorer().solve(part, parts.generator(part))
            loss, _ = objective.loss(part, parts.generator(part), eq, 0.0)
            (loss * share * int(chosen.sum()) / 16).backward()
    reference = _gradient(parts)
    assert float((guarded - reference).abs().max()) <= 1e-5 * float(reference.abs().max())  # float32 sums


def test_the_imitation_loss_is_the_squared_difference_in_payment_units_up_to_a_constant_per_agent():
    sampler = ContractSampler(min_actions=3, max_actions=3, min_outcomes=2, max_outcomes=4)
    context = sampler.sample(3, torch.Generator().manual_seed(0))
    objective = ContractObjective()
    target = torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(1)) * context["outcome_mask"].unsqueeze(1)
    shifted = target + torch.tensor([0.7, 0.2]).view(1, 2, 1)  # the same incentives
    assert torch.allclose(objective.imitation_loss(context, shifted, target), torch.zeros(3), atol=1e-6)
    other = target.clone()
    other[:, 0, 0] += 0.5
    real = context["outcome_mask"]
    expected = []
    for b in range(3):
        m = int(real[b].sum())
        d = torch.zeros(2, m)
        for t, sign in ((other, 1), (target, -1)):
            cut = t[b, :, :m].clamp_min(0)
            d += sign * (cut - cut.amin(dim=1, keepdim=True))
        expected.append(float((d / payment_unit(index_context(context, torch.tensor([b])))) .pow(2).mean()))
    assert objective.imitation_loss(context, other, target).tolist() == pytest.approx(expected, rel=1e-5)
    negative = target - 5.0 * (target > 0)  # negative payments count as 0: every payment removed
    assert torch.allclose(objective.imitation_loss(context, negative, torch.zeros_like(target)), torch.zeros(3))


def test_imitation_answers_are_the_search_and_resume_where_they_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(imitation, "CHUNK", 4)
    flags = dict(steps=6, imitation_contexts=8, imitation_steps=4, imitation_search_steps=3)
    cfg, parts = _parts(**flags)
    contexts = imitation.imitation_contexts(parts, cfg)
    run = RunDir(tmp_path / "run").create()
    answers = imitation.imitation_targets(parts, cfg, run, contexts)
    block = create("blocks", cfg.exact_block)
    expected = torch.cat([optimise_contracts(index_context(contexts, torch.arange(i, i + 4)), block,
                                             get_concept("cce"), cfg.eps, 3, 0.05) for i in (0, 4)])
    assert torch.allclose(answers, expected.float(), atol=1e-6)
    assert (answers > 0).any()  # the search pays somewhere: the regression has something to learn

    # Interrupted after the first chunk: the rest is designed for, the first kept.
    imitation._write(run, cfg, answers[:4] + 1.0)
    resumed = imitation.imitation_targets(parts, cfg, run, contexts)
    assert torch.equal(resumed[:4], answers[:4] + 1.0) and torch.allclose(resumed[4:], answers[4:])

    for change in ({"seed": cfg.seed + 1}, {"imitation_contexts": 12}):  # other contexts: refused, not reused
        other = cfg.model_copy(update=change)
        with pytest.raises(RunDirError, match="answers of another run"):
            imitation.imitation_targets(parts, other, run, contexts)


def test_the_imitation_phase_moves_the_generator_towards_the_answers(tmp_path):
    flags = dict(steps=150, imitation_contexts=16, imitation_steps=150, imitation_search_steps=0, lr=0.003,
                 warmup_steps=0, generator_options={"width": 32, "depth": 2, "depth_outcome": 1, "softplus": False})
    cfg, parts = _parts(**flags)
    contexts = imitation.imitation_contexts(parts, cfg)
    before = build_components(cfg).generator
    train(cfg, tmp_path / "run")
    answers = torch.load(tmp_path / "run" / imitation.TARGETS_FILE, weights_only=True)["targets"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    after = build_components(cfg).generator
    after.load_state_dict(state)
    objective = parts.objective
    with torch.no_grad():
        losses = [float(objective.imitation_loss(contexts, g(contexts), answers).mean()) for g in (before, after)]
    assert losses[1] < 0.5 * losses[0]
