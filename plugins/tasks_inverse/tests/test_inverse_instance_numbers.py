"""A target given as weights near float64's largest is normalised, not zeroed; numbers beyond it are refused.

Four weights of 1e308 summed to infinity: the target became all zeros, every KL
printed 0.0, exit 0. The loader divides by the largest weight before summing.
"""

from __future__ import annotations

import json

import pytest
import torch

from did_core.cli import main
from did_core.testing import assert_design_refuses
from did_inverse.design import load_target


@pytest.mark.parametrize("weights, expected", [
    ([[1e308, 1e308], [1e308, 1e308]], [[0.25, 0.25], [0.25, 0.25]]),
    ([[1e308, 3e307], [1e308, 0.0]], [[10 / 23, 3 / 23], [10 / 23, 0.0]]),
    ([[5e-324, 5e-324], [0.0, 1e-323]], [[0.25, 0.25], [0.0, 0.5]]),
])
def test_weights_at_float64_limits_are_normalised(tmp_path, weights, expected):
    path = tmp_path / "target.json"
    path.write_text(json.dumps({"target": weights}))
    target = load_target(path)["target"][0].double()
    assert torch.allclose(target, torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert float(target.sum()) == pytest.approx(1.0, abs=1e-6)


def test_did_design_reports_the_normalised_target_and_a_finite_kl(tmp_path, capsys):
    path = tmp_path / "target.json"
    path.write_text(json.dumps({"target": [[1e308, 3e307], [1e308, 1e307]]}))
    assert main(["design", "inverse", str(path), "--json", "--optimise", "--steps", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(report["target"], []) == pytest.approx([10 / 24, 3 / 24, 10 / 24, 1 / 24], abs=1e-6)
    values = [block["value_without"] for block in report["blocks"].values() if "value_without" in block]
    assert values and all(v > 0.01 for v in values)  # KL(target || uniform) of a non-uniform target


@pytest.mark.parametrize("text", ['{"target": [[1' + "0" * 400 + ', 1], [1, 1]]}',
                                  '{"target": [[1, 1], [1, 1]], "target": [[1, 0], [0, 1]]}'],
                         ids=["integer 10^400", "target twice"])
def test_a_number_beyond_float64_or_a_key_twice_is_one_line(tmp_path, capsys, text):
    assert_design_refuses("inverse", tmp_path / "target.json", text, capsys)
