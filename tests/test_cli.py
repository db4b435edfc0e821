"""The ``did`` command line: plugins, solve on every file format, malformed input."""

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from did_core.cli import build_parser, main
from did_core.plugins import exact_block_for, registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "games"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plugins_lists_blocks_and_providers(capsys):
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    lines = out.splitlines()
    for kind in ("blocks", "concepts", "generators", "tasks"):
        assert registry(kind).names(), kind  # the toys and the core's own plugins at least
        for entry in registry(kind):
            assert any(entry.name in line and f"from {entry.provider}" in line for line in lines), entry
    assert "toy_exact" in out and "did-core-test-toys" in out and "did-core" in out


@pytest.mark.parametrize("name", ["chicken.json", "prisoners_dilemma.nfg", "battle_of_sexes_outcome.nfg",
                                  "three_player.json", "non_square.npy"])
@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_solve_json_matches_reference(capsys, name, concept):
    """``did solve`` with the default (preferred exact) block against the independent Clarabel reference."""
    pytest.importorskip("cvxpy", reason="reference_solve needs cvxpy (pip install 'did-core[testing]')")
    from did_core.game_io import load_game
    from did_core.testing import reference_solve

    assert registry("blocks").get(exact_block_for(concept)).value.capabilities.exact
    code, out, _ = run(capsys, "solve", str(EXAMPLES / name), "--concept", concept, "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) >= {"joint", "gap", "violation", "entropy", "eps"}
    ref = reference_solve(load_game(EXAMPLES / name).numpy(), concept, 0.05)
    assert np.abs(np.array(report["joint"]) - ref).max() < 1e-4
    assert report["violation"] <= 1e-6


def test_solve_absolute_eps_and_text_output(capsys):
    code, out, _ = run(capsys, "solve", str(EXAMPLES / "chicken.json"), "--eps", "0.5", "--absolute")
    assert code == 0 and "gap:" in out and "violation:" in out and "entropy:" in out


@pytest.mark.parametrize(
    "content, suffix, args, message",
    [
        ('{"payoffs": [[[1, 2], [3]], [[1, 2], [3, 4]]]}', ".json", [], "ragged"),
        ('{"payoffs": [[[1, NaN], [3, 4]], [[1, 2], [3, 4]]]}', ".json", [], "NaN"),
        ('{"payoffs": [[1, 2], [3, 4]]}', ".json", [], "nest"),
        ('{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}', ".json", ["--concept", "nash"], "unknown concept"),
        ('{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}', ".json", ["--eps", "0"], "eps"),
        ('{"payoffs": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}', ".json", ["--block", "nope"], "known:"),
        ("hello", ".txt", [], "supported: .json"),
    ],
)
def test_malformed_input_one_line_exit_2(capsys, tmp_path, content, suffix, args, message):
    path = tmp_path / f"game{suffix}"
    path.write_text(content)
    before = sorted(tmp_path.iterdir())
    code, out, err = run(capsys, "solve", str(path), *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("did: error:")
    assert message.lower() in err.lower()
    assert sorted(tmp_path.iterdir()) == before


def test_train_help_states_real_defaults(capsys):
    """Every flag of did train shows its real default; a None default is described, never shown as 'None'."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default None" not in text and "PydanticUndefined" not in text
    assert "default: the preferred installed exact block for the concept" in text
    assert "--steps STEPS default 300" in text


def _train_help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main(["train", *argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_train_help_lists_what_each_task_profile_changes(capsys):
    """Plain did train --help: the generic defaults, then each installed task's profiles as changes to them."""
    text = _train_help(capsys)
    assert "--steps STEPS default 300 --batch-size" in text  # generic, unlabelled
    # tests/toys.py: quick sets steps, batch size, lr, warm-up and held-out contexts; its sampler profile repeats
    # the sampler's own defaults, so it changes nothing there; paper is not defined.
    assert "toy_task/quick steps 20, batch_size 8, lr 0.003, warmup_steps 2, eval_contexts 16 " in text
    assert "toy_task/paper (nothing)" in text
    for task in registry("tasks").names():
        assert f"{task}/quick" in text and f"{task}/paper" in text


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_train_help_of_a_task_shows_the_defaults_that_run_uses(capsys, profile):
    """With --task (and --profile), every option's help shows the value the resolved config would hold."""
    from did_core.config import RECORDED, TrainConfig, resolve_train_config
    from did_core.commands.train_help import add_config_flags, run_defaults

    args = build_parser().parse_args(["train", "--task", "toy_task", "--profile", profile])
    parser = argparse.ArgumentParser()
    add_config_flags(parser, run_defaults(args))
    resolved = resolve_train_config({"task": "toy_task", "profile": profile}).model_dump()
    helps = {a.dest: " ".join(a.help.split()) for a in parser._actions if a.help}
    for name in TrainConfig.model_fields:
        if name not in RECORDED and resolved[name] is not None and not isinstance(resolved[name], dict):
            assert f"default {resolved[name]}" in helps[name], name
    text = _train_help(capsys, "--task", "toy_task", "--profile", profile)
    assert "--task TASK task name: its sampler, loss and default generator; default toy_task (set on this command " \
           "line)" in text
    if profile == "quick":
        assert "--steps STEPS default 20 (the toy_task/quick profile; generic 300)" in text
        assert "--lr LR default 0.003 (the toy_task/quick profile; generic 0.001)" in text
        assert "--sampler-options SAMPLER_OPTIONS default {min_actions: 2, max_actions: 3} (the toy_task/quick " \
               "profile; generic {})" in text
    else:
        assert "--steps STEPS default 300 --batch-size" in text
    assert "would run with (task toy_task, profile " + profile + ")" in text


def test_train_help_follows_the_config_file_and_flags(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("run.yaml").write_text("task: toy_task\nlr: 0.02\n")
    text = _train_help(capsys, "--config", "run.yaml", "--steps", "7")
    assert "--steps STEPS default 7 (set on this command line)" in text
    assert "--lr LR default 0.02 (from the file run.yaml)" in text
    assert "--batch-size BATCH_SIZE default 8 (the toy_task/quick profile; generic 64)" in text
    assert [p.name for p in tmp_path.iterdir()] == ["run.yaml"]  # asking for help writes nothing


def test_train_help_of_an_unknown_task_is_one_error_line(capsys):
    assert main(["train", "--task", "nope", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("did: error: unknown task 'nope'")


def test_solve_shows_the_files_player_and_action_names(capsys):
    """Labels come from the file (JSON players/actions, .nfg names and strategy labels), else are numbered."""
    games = Path(__file__).resolve().parents[1] / "examples" / "games"
    assert main(["solve", str(games / "battle_of_sexes_outcome.nfg")]) == 0
    out = capsys.readouterr().out
    assert "P(Row, Column)" in out and "Row \\ Column" in out and out.count("opera") == 2
    assert main(["solve", str(games / "chicken.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["players"] == ["Row", "Column"] and report["actions"] == [["swerve", "straight"]] * 2
    assert main(["solve", str(games / "non_square.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["players"] == ["player 1", "player 2"] and report["actions"] == [["1", "2", "3"], ["1", "2"]]


def test_version_is_the_installed_did_core(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"did {metadata.version('did-core')}\n"


def test_an_error_of_a_command_names_it_once(capsys):
    """One prefix: ``did: error: COMMAND: ...`` (argparse's own message), never ``did: error: did COMMAND: ...``."""
    code, out, err = run(capsys, "solve", str(EXAMPLES / "chicken.json"), "--eps", "x")
    assert (code, out) == (2, "")
    assert err == "did: error: solve: argument --eps: invalid float value: 'x' (see did solve --help)\n"
    code, _, err = run(capsys, "--bogus")
    assert code == 2 and err == "did: error: unrecognized arguments: --bogus (see did --help)\n"


def test_an_unknown_command_is_one_line_listing_the_known_ones(capsys):
    code, out, err = run(capsys, "slove", "game.json")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith("did: error: unknown command 'slove'; known: ")
    known = err.split("known: ", 1)[1].split("\n")[0].split(" (DID_LOAD_PLUGINS=")[0]  # the hint, when restricted
    assert known.split(", ") == registry("commands").names()


def test_help_lists_every_registered_command_with_its_description(capsys):
    """``did --help`` and plain ``did`` list the commands registry: the core's commands are plugins like any."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for entry in registry("commands"):
        assert f"\n  {entry.name} " in text, entry.name
        if entry.provider == "did-core":
            assert entry.value.description.split()[0] in text and entry.value.parser is not None
    assert re.search(r"\n  solve +the eps-ME \(C\)CE of one game\n", text)
    assert main([]) == 2 and capsys.readouterr().out == text  # no command given: the same listing
    assert set(_flags_of(build_parser())) == {e.name for e in registry("commands") if hasattr(e.value, "parser")}


def _flags_of(parser) -> dict:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices


@pytest.mark.parametrize("parse, text, expected", [
    ("int", "3", 3), ("int", "0", "0 is outside [1, 5]"), ("int", "6", "6 is outside [1, 5]"),
    ("int", "2.5", "'2.5' is not an integer"), ("float", "1e308", 1e308), ("float", "nan", "'nan' is not finite"),
    ("float", "x", "'x' is not a number"), ("positive", "-0.0", "'-0.0' is not > 0"), ("positive", "0.25", 0.25)])
def test_numeric_flag_types_refuse_in_words(parse, text, expected):
    import argparse

    from did_core.console import bounded_int, finite_float, positive_float

    function = {"int": bounded_int(1, 5), "float": finite_float, "positive": positive_float}[parse]
    if isinstance(expected, str):
        with pytest.raises(argparse.ArgumentTypeError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            function(text)
    else:
        assert function(text) == expected
