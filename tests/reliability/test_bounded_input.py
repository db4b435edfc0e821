"""YAML and JSON a user gives are read with bounds, and a message shows a user's value in at most a line.

A key given twice is refused naming it (the later one would silently win); YAML
aliases may not make a value much larger than its text ("billion laughs": nine
lines that stand for 9^9 values, which an error message formatting the value once
took 24 GB to print); an integer literal beyond float64's range is refused where it
is read. Every case is one ``did: error:`` line, exit 2, nothing written. The alias
bombs run the console script in a subprocess with a memory limit, so that a
regression fails the test rather than the machine.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys

import pytest

from did_core.cli import main
from did_core.files import (MAX_YAML_ALIASES, MAX_YAML_REPEATS, JsonRefused, UnreadableFile, YamlError, YamlRefused,
                            parse_yaml, read_json_file, shown)
from did_core.instance_files import InstanceError, read_json
from run_helpers import TINY, console_env, snapshot

GAME = {"payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]}


def _bomb_value(levels: int = 9) -> str:
    """A YAML list whose last entry stands for ``9 ** levels`` strings through ``levels - 1`` anchors, each repeated
    9 times by aliases (72 aliases for 9 levels: under :data:`MAX_YAML_ALIASES`)."""
    entries = ["&l0 [x, x, x, x, x, x, x, x, x]"]
    entries += [f"&l{level} [{', '.join([f'*l{level - 1}'] * 9)}]" for level in range(1, levels)]
    return f"[{', '.join(entries)}]"


def _bomb(key: str = "tol", levels: int = 9) -> str:
    """A flag's value: the one-entry YAML mapping ``{key: bomb}`` (the issue's ``--block-options`` with ``tol``)."""
    return f"{{{key}: {_bomb_value(levels)}}}"


def _one_error(capsys, *parts: str) -> str:
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err and all(part in out.err for part in parts), out.err
    return out.err


# ----------------------------------------------------------------------------------------------- parse_yaml


@pytest.mark.parametrize("text, message", [
    ("task: toy_task\nsteps: 3\ntask: toy_task\n", "has a duplicate key 'task' (line 3, column 1)"),
    ("generator_options: {width: 8, depth: 1, width: 16}", "has a duplicate key 'width' (line 1, column 41)"),
    ("a: [{b: 1}, {c: {d: 1, d: 2}}]", "has a duplicate key 'd'"),
    ("{1: a, 1.0: b}", "has a duplicate key 1.0"),
    ("x: &x 1\nl: [" + ", ".join(["*x"] * (MAX_YAML_ALIASES + 1)) + "]", f"uses {MAX_YAML_ALIASES + 1} YAML aliases"),
    (_bomb(), "has YAML aliases that repeat"),
    ("a: &a [1, *a]", "has a YAML alias inside the value it names"),
    ("tol: 1" + "0" * 400, "out of float64 range"),
])
def test_yaml_refusals_are_one_line_and_immediate(text, message):
    with pytest.raises(YamlRefused, match=re.escape(message)) as info:
        parse_yaml(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize("text, message", [
    ("task: [unclosed\n", "is not valid YAML: "),
    ("task: " + "[" * 10_000 + "]" * 10_000, "is not valid YAML: nested too deeply"),
    ("a: 2023-13-45", "is not valid YAML: month must be in 1..12"),
    ("a: " + "9" * 5000, "is not valid YAML: Exceeds the limit"),
])
def test_malformed_yaml_is_a_yaml_error(text, message):
    with pytest.raises(YamlError, match=message) as info:
        parse_yaml(text)
    assert not isinstance(info.value, YamlRefused) and "\n" not in str(info.value)


def test_yaml_within_the_bounds_reads_as_safe_load_reads_it():
    assert parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n") == {"base": {"x": 1, "y": 2},
                                                                           "c": {"x": 3, "y": 2}}
    assert parse_yaml("x: &x [1, 2]\nl: [" + ", ".join(["*x"] * MAX_YAML_ALIASES) + "]")["l"] == [[1, 2]] * 100
    assert len(parse_yaml(_bomb(levels=4))["tol"]) == 4  # 9^4 strings in its last entry, 7380 values repeated
    with pytest.raises(YamlRefused, match=f"at most {MAX_YAML_REPEATS}"):
        parse_yaml(_bomb(levels=6))
    assert parse_yaml("") is None and parse_yaml("{1e3: 0x10}") == {"1e3": 16}


# ------------------------------------------------------------------------------------------ the did command


@pytest.mark.parametrize("argv", [
    ["solve", "game.json", "--block-options", "{max_memory_gb: 1, max_memory_gb: 2}"],
    ["train", "--task", "toy_task", "--generator-options", "{width: 8, width: 16}"],
    ["train", "--config", "twice.yaml"],
    ["train", "--task", "toy_task", "--steps", "1" + "0" * 400],
], ids=["solve --block-options", "train --generator-options", "train --config", "train --steps"])
def test_a_duplicate_key_or_a_number_beyond_float64_is_refused_in_one_line(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "game.json").write_text(json.dumps(GAME))
    config = {k: v for k, v in TINY.items() if k != "task"}
    (tmp_path / "twice.yaml").write_text("task: toy_task\n" + "".join(f"{k}: {json.dumps(v)}\n"
                                                                     for k, v in config.items()) + "task: nope\n")
    before = snapshot(tmp_path)
    assert main(argv) == 2
    _one_error(capsys, "duplicate key 'task'" if "twice.yaml" in argv else
               "out of float64 range" if "--steps" in argv else "duplicate key")
    assert snapshot(tmp_path) == before


def _limited_memory() -> None:
    limit = 8 << 30  # 8 GiB of address space (torch maps much it never touches); a bomb expanded once needs tens
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("argv", [
    ["solve", "game.json", "--block-options", _bomb()],
    ["solve", "game.json", "--block-options", _bomb("max_memory_gb")],
    ["train", "--task", "toy_task", "--generator-options", _bomb("width")],
    ["train", "--task", "toy_task", "--lr", _bomb("x")],
    ["train", "--config", "bomb.yaml"],
], ids=["solve --block-options tol", "solve --block-options max_memory_gb", "train --generator-options",
        "train --lr", "train --config"])
def test_a_yaml_alias_bomb_is_refused_in_bounded_memory_and_time(tmp_path, toy_site, argv):
    work = tmp_path / "work"
    work.mkdir()
    (work / "game.json").write_text(json.dumps(GAME))
    (work / "bomb.yaml").write_text(f"task: toy_task\ngenerator_options: {_bomb_value()}\n")
    before = snapshot(work)
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:  # unread if gigabytes
        code = subprocess.run([sys.executable, "-m", "did_core.cli", *argv], cwd=work, stdout=out, stderr=err,
                              timeout=120, env=console_env(toy_site), preexec_fn=_limited_memory).returncode
    with open(tmp_path / "err", encoding="utf-8", errors="replace") as err:
        stderr = err.read(4000)
    assert code == 2 and (tmp_path / "out").stat().st_size == 0, stderr
    assert stderr.startswith("did: error:") and stderr.count("\n") == 1 and len(stderr) < 400, stderr
    assert "has YAML aliases that repeat" in stderr
    assert snapshot(work) == before


# --------------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("text, message", [
    ('{"a": 1, "a": 2}', "has the key 'a' twice in one object"),
    ('{"a": [{"b": {"c": 1, "c": 1}}]}', "has the key 'c' twice"),
    ('{"a": 1' + "0" * 400 + "}", "has the number 1000"),
    ('{"a": -1' + "0" * 400 + "}", "out of float64 range"),
])
def test_json_files_refuse_duplicate_keys_and_numbers_beyond_float64(tmp_path, text, message):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(UnreadableFile, match=message):
        read_json_file(path, 1 << 20)
    with pytest.raises(InstanceError, match=message):  # every task's instance files are read through it
        read_json(path)
    assert issubclass(JsonRefused, ValueError)


@pytest.mark.parametrize("text, message", [
    ('{"payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]], "payoffs": [[[1]]]}', "has the key 'payoffs' twice"),
    ('{"payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]], "players": ["a", "b"], "players": ["c", "d"]}',
     "has the key 'players' twice"),
    ('{"payoffs": [[[3, 1' + "0" * 400 + '], [5, 1]], [[3, 5], [0, 1]]]}', "is out of float64 range"),
])
def test_game_files_refuse_duplicate_keys_and_numbers_beyond_float64(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "game.json").write_text(text)
    before = snapshot(tmp_path)
    assert main(["solve", "game.json"]) == 2
    assert len(_one_error(capsys, "game.json: ", message)) < 300
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------- values in messages


def _shared_bomb(levels: int) -> list:
    """``9 ** levels`` strings as nested lists of shared references (what a YAML alias bomb loads to)."""
    value: list = ["x"] * 9
    for _ in range(levels - 1):
        value = [value] * 9
    return value


def test_shown_is_bounded_whatever_the_value():
    assert shown(_shared_bomb(12)).startswith("[[[[...], [...],") and len(shown(_shared_bomb(12))) == 80
    assert len(shown("x" * 10**6)) == 80 and len(shown(10**5000)) < 80
    assert len(shown({i: i for i in range(10**4)})) <= 80
    assert shown("nope") == "'nope'" and shown(0.5) == "0.5" and shown([1, 2]) == "[1, 2]"


def test_option_messages_show_a_bounded_value():
    """A message formatted the user's value whole (``{value!r}``): a bomb's took 24 GB; a long list, a long line."""
    from did_core.blocks import memory_limit
    from did_core.equilibria import Epsilon
    from did_core.plugins import registry

    for check in (memory_limit, Epsilon):
        with pytest.raises(ValueError) as info:
            check(_shared_bomb(6))  # 531441 strings: whole, a 3 MB message
        assert len(str(info.value)) < 200
    with pytest.raises(ValueError) as info:
        registry("blocks").get("x" * 10**5)
    assert len(str(info.value).split(";")[0]) < 120
