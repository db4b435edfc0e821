"""``did design`` prints no answer computed from numbers the task cannot compute with.

A commitment game with payoffs of 1e30 made the strong Stackelberg value NaN ("no
follower profile is ever a best response"), printed with exit 0 (``NaN`` in the
JSON). ``did design`` now checks every number it would print.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from did_core.cli import main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "commitment_game2.json"


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_a_result_that_is_not_finite_is_one_line_not_an_answer(tmp_path, capsys, json_flag):
    data = json.loads(EXAMPLE.read_text())
    data["leader_payoffs"] = [[x * 1e30 for x in row] for row in data["leader_payoffs"]]
    data["follower_payoffs"] = [[[x * 1e30 for x in row] for row in p] for p in data["follower_payoffs"]]
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    assert main(["design", "commitment", str(path), "--steps", "2", *json_flag]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith(f"did: error: {path}: the result is not finite (strong_stackelberg_value)"), out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.json"]
