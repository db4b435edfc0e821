"""The inverse task: sampler, induced games, value, loss (gauge term), registration, and a run end to end.

Truth: the definitions of docs/mathematics.md, section 6.2, recomputed here with numpy
on the real (cropped) games, independent of ``did_core.games`` and ``did_core.equilibria``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from did_core.blocks import Equilibrium
from did_core.plugins import exact_block_for, get_concept, registry
from did_core.tasks import Task
from did_inverse.plugin import INVERSE, inverse_generator
from did_inverse.task import InverseObjective, InverseSampler


def _counts(context) -> np.ndarray:
    return context["mask"].sum(dim=2).numpy()


def _padding(shape, counts) -> np.ndarray:
    """True on the padded entries of an array ``shape`` whose real block is ``[:c_1, ..., :c_N]``."""
    out = np.ones(shape, dtype=bool)
    out[tuple(slice(0, int(c)) for c in counts)] = False
    return out


@pytest.mark.parametrize("n_players, min_actions, max_actions", [(2, 2, 4), (2, 1, 5), (3, 2, 3)])
def test_sampler_shapes_masks_and_reproducibility(n_players, min_actions, max_actions):
    sampler = InverseSampler(n_players=n_players, min_actions=min_actions, max_actions=max_actions)
    context = sampler.sample(40, torch.Generator().manual_seed(7))
    assert set(context) == {"target", "noise", "mask"}
    assert context["target"].shape == context["noise"].shape == (40, *[max_actions] * n_players)
    assert context["mask"].shape == (40, n_players, max_actions) and context["mask"].dtype == torch.bool
    counts = _counts(context)
    assert counts.min() >= min_actions and counts.max() <= max_actions
    for b in range(40):
        for p in range(n_players):  # real actions first
            assert context["mask"][b, p].tolist() == [a < counts[b, p] for a in range(max_actions)]
        padding = _padding(context["target"].shape[1:], counts[b])
        target, noise = context["target"][b].numpy(), context["noise"][b].numpy()
        assert target[~padding].sum() == pytest.approx(1.0, abs=1e-5) and (target[~padding] > 0).all()
        assert not target[padding].any() and not noise[padding].any() and noise[~padding].all()
    again = sampler.sample(40, torch.Generator().manual_seed(7))
    assert all(torch.equal(context[k], again[k]) for k in context)
    other = sampler.sample(40, torch.Generator().manual_seed(8))
    assert not torch.equal(context["target"], other["target"])
    assert torch.equal(sampler.size_of(context), torch.as_tensor(counts.max(axis=1)))
    assert torch.equal(sampler.extents(context), torch.as_tensor(counts))


def test_sampler_options_are_validated():
    with pytest.raises(ValueError, match="min_actions"):
        InverseSampler(min_actions=5, max_actions=3)
    with pytest.raises(ValueError, match="max_actionz"):
        InverseSampler(max_actionz=3)
    with pytest.raises(ValueError, match="n_players"):
        InverseSampler(n_players=9)


def test_induce_zeroes_padded_entries_and_keeps_the_rest():
    sampler = InverseSampler(min_actions=1, max_actions=4)
    context = sampler.sample(12, torch.Generator().manual_seed(3))
    x = torch.randn(12, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    games, mask = InverseObjective().induce(context, x)
    assert torch.equal(mask, context["mask"])
    for b, (n1, n2) in enumerate(_counts(context)):
        assert torch.equal(games[b, :, :n1, :n2], x[b, :, :n1, :n2])
        for p in range(2):
            assert not games[b, p].numpy()[_padding((4, 4), (n1, n2))].any()
    real = InverseObjective().intervention_mask(context)
    assert torch.equal(games[~real], torch.zeros_like(games[~real])) and torch.equal(games[real], x[real])


def _padded_joint(context, seed: int) -> torch.Tensor:
    """A random joint on each context's real joint actions (a stand-in for an equilibrium), zero elsewhere."""
    weights = torch.rand(context["target"].shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weights = weights * (context["target"] > 0)
    return weights / weights.flatten(1).sum(dim=1).view(-1, 1, 1)


def _kl(target: np.ndarray, sigma: np.ndarray) -> float:
    t = target[target > 0].astype(float)
    return float(np.sum(t * np.log(t / sigma[target > 0])))


def _gauge(game: np.ndarray) -> float:
    """Mean over real entries of ``(G - Phi(G))^2``: ``Phi`` centres each player over its own actions and
    scales to RMS 1 (``game`` is the real, cropped game ``[N, A_1..A_N]``)."""
    total = 0.0
    for p in range(game.shape[0]):
        centred = game[p] - game[p].mean(axis=p, keepdims=True)
        scale = np.sqrt(np.mean(centred**2))
        total += np.sum((game[p] - (centred / scale if scale > 0 else 0 * centred)) ** 2)
    return total / game.size


def test_value_is_kl_of_target_from_sigma():
    sampler = InverseSampler(min_actions=1, max_actions=4)
    context = sampler.sample(10, torch.Generator().manual_seed(5))
    sigma = _padded_joint(context, 6)
    eq = Equilibrium(sigma=sigma, alpha=None, eps=torch.zeros(10, 2), concept=get_concept("cce"))
    value = InverseObjective().value(context, torch.zeros(10, 2, 4, 4), eq)
    assert value.shape == (10,)
    for b in range(10):
        assert float(value[b]) == pytest.approx(_kl(context["target"][b].numpy(), sigma[b].numpy()), rel=1e-6)
    same = Equilibrium(sigma=context["target"].double(), alpha=None, eps=torch.zeros(10, 2), concept=get_concept("cce"))
    assert torch.allclose(InverseObjective().value(context, torch.zeros(10, 2, 4, 4), same),
                          torch.zeros(10, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("mu", [0.0, 0.1, 2.5])
def test_loss_is_mean_kl_plus_mu_times_the_gauge_term(mu):
    sampler = InverseSampler(min_actions=2, max_actions=4)
    context = sampler.sample(8, torch.Generator().manual_seed(9))
    x = 3.0 * torch.randn(8, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(10)) + 1.0
    sigma = _padded_joint(context, 11)
    eq = Equilibrium(sigma=sigma, alpha=None, eps=torch.zeros(8, 2), concept=get_concept("cce"))
    objective = InverseObjective(mu=mu)
    loss, scalars = objective.loss(context, x, eq, 0.5)
    counts = _counts(context)
    kl = np.mean([_kl(context["target"][b].numpy(), sigma[b].numpy()) for b in range(8)])
    gauge = np.mean([_gauge(x[b, :, :n1, :n2].numpy()) for b, (n1, n2) in enumerate(counts)])
    assert scalars["kl"] == pytest.approx(kl, rel=1e-6) and scalars["gauge"] == pytest.approx(gauge, rel=1e-9)
    assert float(loss) == pytest.approx(kl + mu * gauge, rel=1e-6)
    # A game already in the gauge (centred per player, RMS 1) costs nothing.
    fixed = torch.zeros_like(x)
    for b, (n1, n2) in enumerate(counts):
        g = x[b, :, :n1, :n2].numpy()
        for p in range(2):
            centred = g[p] - g[p].mean(axis=p, keepdims=True)
            fixed[b, p, :n1, :n2] = torch.as_tensor(centred / np.sqrt(np.mean(centred**2)))
    assert objective.loss(context, fixed, eq, 0.5)[1]["gauge"] == pytest.approx(0.0, abs=1e-20)


def test_baseline_and_generator_shapes():
    sampler = InverseSampler(min_actions=2, max_actions=3)
    context = sampler.sample(5, torch.Generator().manual_seed(1))
    objective = InverseObjective()
    x0 = objective.baseline_intervention(context)
    assert x0.shape == (5, 2, 3, 3) and not x0.any()
    generator = inverse_generator(sampler, width=8, depth=1)
    x = generator(context)
    assert x.shape == x0.shape and not x[~objective.intervention_mask(context)].any()
    assert x[objective.intervention_mask(context)].lt(0).any()  # identity output: a whole game, any sign


def test_the_task_is_registered_with_its_fields():
    entry = registry("tasks").get("inverse")
    assert entry.provider == "did-plugins-inverse" and entry.value is INVERSE and isinstance(INVERSE, Task)
    assert INVERSE.sampler is InverseSampler and INVERSE.objective is InverseObjective
    assert INVERSE.generator is inverse_generator
    assert type(INVERSE.instances).__name__ == "InverseInstances"  # did design inverse TARGET.json
    assert set(INVERSE.train_profiles) == {"quick", "paper"} and INVERSE.train_profiles["quick"]["steps"] == 2000
    assert INVERSE.polish_budget == 4000 and INVERSE.size_axis == "actions of the larger player"
    assert INVERSE.description and InverseObjective.minimize and not InverseObjective.report_change
    assert InverseSampler.PROFILES["paper"]["features"] == "scaled"


def _exact_block() -> str:
    try:
        return exact_block_for("cce")
    except ValueError:
        pytest.skip("no exact block is installed (did-plugins-exact-cvx)")


def test_a_tiny_run_end_to_end_with_the_simplex_figure(tmp_path, capsys):
    """Moved from the core's tests: train, evaluate with the guard, the baseline checked independently,
    and the task's own figure."""
    from did_core.cli import main
    from did_core.config import resolve_train_config
    from did_core.train import train

    block = _exact_block()
    cfg = resolve_train_config({"task": "inverse", "steps": 3, "batch_size": 4, "eval_contexts": 6,
                                "sampler_options": {"min_actions": 2, "max_actions": 3},
                                "generator_options": {"width": 8, "depth": 1}})
    assert cfg.block == cfg.exact_block == block
    evaluation = train(cfg, tmp_path / "run")[block].as_dict()
    # The baseline is a constant game, whose eps-ME joint is uniform: KL(target || uniform), recomputed.
    held_out = InverseSampler(min_actions=2, max_actions=3).sample(6, torch.Generator().manual_seed(cfg.eval_seed))
    expected = [_kl(held_out["target"][b].numpy(), np.full((3, 3), 1.0 / (n1 * n2)))
                for b, (n1, n2) in enumerate(_counts(held_out))]
    assert evaluation["baseline"] == pytest.approx(float(np.mean(expected)), rel=1e-5)
    assert 0.0 < evaluation["baseline"] < 2.0 and evaluation["contexts"] == 6
    pytest.importorskip("matplotlib")
    assert main(["eval", str(tmp_path / "run"), "--contexts", "2", "--plots"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    exact = report["blocks"][block]
    # Inverse minimises KL; the guard keeps the generator's game only where the exact block says it is better.
    assert exact["guarded"]["metric"] <= exact["metric"] + 1e-12
    assert exact["guarded"]["metric"] <= exact["baseline"] + 1e-12
    assert report["meta"]["config"]["task"] == "inverse" and exact["metric_name"] == "KL(target||sigma)"
    for name in ("per_size.png", "training_curves.png", "inverse_simplex.png"):
        assert (tmp_path / "run" / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
