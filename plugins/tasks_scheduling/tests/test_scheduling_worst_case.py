"""Training for the worst case (docs/mathematics.md, section 8, "Training for the worst case").

``did_core.equilibrium_range.worst_case_value`` against ``value_range`` (its value) and against central finite
differences of ``value_range`` (its gradient, from the LP's duals) on small non-degenerate scheduling games with
random taxes, for CCE and CE and for a minimised and a maximised objective; then the trainer's option
``worst_case_weight``: 0 leaves the step bit-identical and a short run logs ``worst_case`` (a task without a linear
form is refused in one line before anything is written: tests/reliability/test_range_flags.py).
"""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import torch

from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.equilibria import Epsilon
from did_core.equilibrium_range import value_range, worst_case_value
from did_core.plugins import get_concept
from did_core.scoring import context_to
from did_core.train import build_components, training_step
from did_scheduling import SchedulingObjective, SchedulingSampler

class MaximisedMakespan(SchedulingObjective):
    """The makespan, maximised: its worst case is the lowest makespan over the set."""

    minimize: ClassVar[bool] = False


def _instances(count: int = 4) -> dict[str, torch.Tensor]:
    """2 players on 2 or 3 machines (padded to 3), in float64."""
    context = SchedulingSampler(min_machines=2, max_machines=3).sample(
        count, torch.Generator().manual_seed(1))
    return {k: v.double() if v.is_floating_point() else v for k, v in context.items()}


@pytest.mark.parametrize("objective", [SchedulingObjective(), MaximisedMakespan()],
                         ids=["minimised", "maximised"])
@pytest.mark.parametrize("concept", ["cce", "ce"])
def test_worst_case_value_and_gradient_match_the_lp(objective, concept):
    context, eps = _instances(), Epsilon(0.05)
    generator = torch.Generator().manual_seed(2)
    x = -0.3 * torch.rand(context["utilities"].shape, generator=generator, dtype=torch.float64)
    x = x.requires_grad_()
    worst = worst_case_value(objective, context, x, get_concept(concept), eps)
    reference, best = value_range(objective, context, x.detach(), get_concept(concept), eps)
    assert torch.allclose(worst.detach(), reference, atol=1e-9)
    assert bool(((reference - best).abs() > 1e-3).all())  # a true range: the worst end is not the best
    grad, = torch.autograd.grad(worst.sum(), x)
    h = 1e-6
    for _ in range(2):  # directional derivatives along random real directions
        d = torch.randn(x.shape, generator=generator, dtype=torch.float64) * objective.intervention_mask(context)
        plus = value_range(objective, context, x.detach() + h * d, get_concept(concept), eps)[0]
        minus = value_range(objective, context, x.detach() - h * d, get_concept(concept), eps)[0]
        assert torch.allclose((grad * d).flatten(1).sum(dim=1), (plus - minus) / (2 * h), atol=1e-6, rtol=1e-5)


def _scheduling_parts(**overrides):
    cfg = resolve_train_config({"task": "scheduling", "batch_size": 8, "seed": 3, **overrides})
    return build_components(cfg), cfg


def _step(parts, context, **kwargs):
    parts.generator.zero_grad()
    scalars = training_step(parts, context, 0.5, 8, 0, 1.0, **kwargs)
    return scalars, [p.grad.clone() for p in parts.generator.parameters() if p.grad is not None]


def test_weight_zero_leaves_the_step_bit_identical():
    parts, cfg = _scheduling_parts()
    context = context_to(parts.sampler.sample(8, torch.Generator().manual_seed(4)), parts.device)
    unset, grads_unset = _step(parts, context)
    zero, grads_zero = _step(parts, context, worst_case_weight=0.0)
    assert unset == zero and "worst_case" not in zero
    assert len(grads_unset) == len(grads_zero) > 0
    assert all(torch.equal(a, b) for a, b in zip(grads_unset, grads_zero))
    weighted, grads_weighted = _step(parts, context, worst_case_weight=1.0)
    assert weighted["loss"] == pytest.approx(unset["loss"] + weighted["worst_case"])  # a minimised makespan: +w
    assert weighted["worst_case"] >= unset["makespan"] - 1e-6  # the worst end is no better than the ME joint's
    assert any(not torch.equal(a, b) for a, b in zip(grads_unset, grads_weighted))


def test_training_for_the_worst_case_logs_it(tmp_path):
    run = tmp_path / "run"
    code = main(["train", "--task", "scheduling", "--worst-case-weight", "1", "--steps", "2", "--batch-size", "8",
                 "--eval-contexts", "4", "--log-every", "1", "--run-dir", str(run)])
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert all("worst_case" in row for row in metrics if "loss" in row)
    assert any("worst_case" in row for row in metrics)
