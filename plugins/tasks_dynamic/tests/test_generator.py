"""The cell generator: one network for every cell of a setting; VCG before training, better after a few steps."""

from __future__ import annotations

import pytest
import torch

from did_core.runs import RunDir
from did_dynamic.evaluation import evaluate
from did_dynamic.generator import CellGenerator, state_action_features, train_generator
from did_dynamic.settings import make_setting


@pytest.mark.parametrize("name,cells", [("sales-asym", [(2, 2), (4, 3)]), ("makespan-sym", [(2, 4), (3, 3)]),
                                        ("gridworld", [(2, 3), (3, 4)])])
def test_a_fresh_generator_is_vcg_in_every_cell(name, cells):
    settings = [make_setting(name, n, m) for n, m in cells]
    widths = {state_action_features(s).shape[-1] for s in settings}
    assert len(widths) == 1
    generator = CellGenerator(widths.pop())
    for setting in settings:
        mechanism = generator(setting)
        features = state_action_features(setting)
        assert features.shape[:2] == (setting.mdp.num_states, setting.mdp.num_actions)
        assert bool(torch.isfinite(features).all())
        assert torch.equal(mechanism.weights, torch.ones(setting.n, dtype=torch.float64))
        assert torch.equal(mechanism.boosts, torch.zeros_like(mechanism.boosts))


def test_a_short_training_beats_vcg_where_vcg_earns_nothing(tmp_path):
    cells = [make_setting("sales-sym", 2, 2), make_setting("sales-sym", 3, 2)]
    generator = train_generator(cells, RunDir(tmp_path / "run").acquire(), steps=30, batch=32, lr=0.03)
    with torch.no_grad():
        assert evaluate(cells[0], generator(cells[0]), 4000, 1).mean > 0.3  # VCG: 0 (two agents, two items)
