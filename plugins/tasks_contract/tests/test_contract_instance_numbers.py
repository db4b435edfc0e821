"""``did design contract FILE`` refuses numbers and keys it cannot take in one line naming the file.

An integer literal beyond float64's range (``1`` and 400 zeros) was a traceback
(``OverflowError`` from ``math.isfinite``); a key given twice was read as its last value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from did_core.cli import main
from did_core.testing import assert_design_refuses

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "christmas_tree.json"


def _text(**changes: str) -> str:
    """The example's JSON text with each field's value replaced by the given JSON text."""
    data = json.loads(EXAMPLE.read_text())
    marks = {key: f"@{key}@" for key in changes}
    text = json.dumps({**data, **marks})
    for key, value in changes.items():
        text = text.replace(json.dumps(marks[key]), value)
    return text


@pytest.mark.parametrize("content", [
    _text(values="[1" + "0" * 400 + ", 0, 3]"),
    _text(values="[10, 0, -1" + "0" * 400 + "]"),
    _text(costs='[[[0, 1' + "0" * 400 + '], [0, 0]], [[0, 0], [0, 0]]]'),
], ids=["value 10^400", "value -10^400", "cost 10^400"])
def test_an_integer_beyond_float64_is_one_line(tmp_path, capsys, content):
    assert_design_refuses("contract", tmp_path / "problem.json", content, capsys)


def test_a_key_given_twice_is_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "problem.json"
    path.write_text(_text().replace('{"', '{"values": [1, 2, 3], "', 1))
    assert main(["design", "contract", str(path), "--optimise", "--steps", "1"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith(f"did: error: cannot read {path}: has the key 'values' twice in one object"), out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["problem.json"]
