"""Hostile input to the Bayesian game file of ``did solve`` and to the instance files of ``did design
message_allocation`` and ``did design mu_spm``: malformed, non-finite or oversized input is one ``did: error:``
line, exit 2, nothing on standard output and nothing written; payoffs near float64's limits are solved."""

from __future__ import annotations

import json

import pytest

from did_core.cli import main
from did_core.plugins import registry
from did_core.testing import assert_design_refuses

GOOD = {"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0, 1]]]}


def _one_error(capsys, what: str) -> None:
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("did: error: ") and out.err.count("\n") == 1, out.err
    assert what in out.err, out.err


@pytest.mark.parametrize("content, what", [
    ('{"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0, NaN]]]}', "non-finite"),
    ('{"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0, 1e400]]]}', "payoffs"),
    ('{"prior": [[0.5, Infinity]], "payoffs": [[[1, 0], [0, 1]]]}', '"prior"[0][1]'),
    ('{"prior": [[0.5, 0.6]], "payoffs": [[[1, 0], [0, 1]]]}', "sums to"),
    ('{"prior": [[1.5, -0.5]], "payoffs": [[[1, 0], [0, 1]]]}', '"prior"[0][1]'),
    ('{"prior": [[true, 0]], "payoffs": [[[1, 0], [0, 1]]]}', '"prior"[0][0]'),
    ('{"prior": [], "payoffs": [[[1, 0], [0, 1]]]}', '"prior"'),
    ('{"prior": [[0.5, 0.5]], "payoffs": [[1, 0], [0, 1]]}', "deep"),
    ('{"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0]]]}', "ragged"),
    ('{"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0, 1], [1, 1]]]}', "types"),
    ('{"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0, 1]]], "types": [["a", "a"]]}', "once"),
    ('{"prior": [[0.5, 0.5]], "payoffs": [[[1, 0], [0, 1]]], "actions": [["x"]]}', '"actions"'),
    ('{"prior": [[0.5, 0.5]], "prior": [[1, 0]], "payoffs": [[[1, 0], [0, 1]]]}', "twice"),
    (json.dumps({"prior": [[1 / 17] * 17], "payoffs": [[[1, 0]] * 17]}), "agent-normal form"),
    (json.dumps({"prior": [[1 / 40] * 40], "payoffs": [[[1]] * 40]}), "40 agents"),
])
def test_malformed_bayesian_game_files_are_one_line(tmp_path, capsys, content, what):
    path = tmp_path / "game.json"
    path.write_text(content)
    assert main(["solve", str(path)]) == 2
    _one_error(capsys, what)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.json"]


def test_a_bayesian_file_is_refused_by_the_normal_form_readers(tmp_path):
    from did_core.game_io import GameFormatError, load_game

    path = tmp_path / "game.json"
    path.write_text(json.dumps(GOOD))
    with pytest.raises(GameFormatError, match="Bayesian"):
        load_game(path)


@pytest.mark.parametrize("factor", [1e-300, 3e306])
def test_bayesian_payoffs_near_float64_limits_are_solved_as_rescaled(tmp_path, capsys, factor):
    def solved(scale: float) -> dict:
        path = tmp_path / "game.json"
        path.write_text(json.dumps({"prior": [[0.3, 0.7], [0.6, 0.4]],
                                    "payoffs": [[[[[scale * (a + 2 * b + t) for b in range(2)] for a in range(2)]
                                                  for t in range(2)] for _ in range(2)],
                                                [[[[scale * (a - b + u) for b in range(2)] for a in range(2)]
                                                  for _ in range(2)] for u in range(2)]]}))
        assert main(["solve", str(path), "--json"]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    plain, scaled = solved(1.0), solved(factor)
    flat = [[p for types in r for strategy in types for p in strategy] for r in (plain, scaled)]
    assert flat[1] == pytest.approx(flat[0], abs=1e-9)


ALLOCATION = {"items": 3, "messages": 2, "prior": [0.2, 0.3, 0.5]}
SPM = {"values": [[[0.5, 0.8], [2.5, 0.2]], [[0, 0.5], [1, 0.5]]], "messages": 2}


@pytest.mark.parametrize("task, content", [
    ("message_allocation", "not json"),
    ("message_allocation", '{"items": 3, "messages": 2, "prior": [0.2, 0.3, NaN]}'),
    ("message_allocation", '{"items": 3, "messages": 2, "prior": [0.2, 0.3, 1e400]}'),
    ("message_allocation", {**ALLOCATION, "items": 10 ** 30}),
    ("message_allocation", {**ALLOCATION, "items": 8, "messages": 4, "prior": [0.125] * 8, "item_names": ["a"] * 8}),
    ("message_allocation", {**ALLOCATION, "messages": 0}),
    ("message_allocation", {**ALLOCATION, "items": 3.0}),
    ("message_allocation", [1, 2, 3]),
    ("message_allocation", None),
    ("mu_spm", "not json"),
    ("mu_spm", '{"values": [[[0.5, 0.8], [Infinity, 0.2]], [[0, 0.5], [1, 0.5]]], "messages": 2}'),
    ("mu_spm", {**SPM, "values": [[[0.5, 0.8], [2.5e7, 0.2]], [[0, 0.5], [1, 0.5]]]}),
    ("mu_spm", {**SPM, "values": [[[0.5, 0.8], [2.5, 0.2]], [[0, 0.5], [1, 0.5]], [[1, 1]]]}),
    ("mu_spm", {**SPM, "values": [[[0.5, 0.8, 1], [2.5, 0.2]], [[0, 0.5], [1, 0.5]]]}),
    ("mu_spm", {**SPM, "values": [[[-1, 0.8], [2.5, 0.2]], [[0, 0.5], [1, 0.5]]]}),
    ("mu_spm", {**SPM, "messages": 10 ** 6}),
    ("mu_spm", {**SPM, "agents": "ab"}),
    ("mu_spm", None),
])
def test_malformed_message_instances_are_one_line(tmp_path, task, content):
    if task not in registry("tasks"):
        pytest.skip(f"task {task} is not loaded (did-plugins-messages not installed, or left out by DID_LOAD_PLUGINS)")
    assert_design_refuses(task, tmp_path / "instance.json", content)
