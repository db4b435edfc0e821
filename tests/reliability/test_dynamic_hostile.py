"""Hostile invocations of the dynamic-mechanism commands (``did train --task dynamic``, ``did eval`` of its runs and
``--shipped dynamic``, ``did design dynamic``): one ``did: error:`` line, exit code 2, nothing written. And the
hook ``did_register_policy_blocks`` used by a throw-away plugin: a new block is found by name, a duplicate name
is refused and named.

Each command case runs in a working directory holding a tiny finished run and damaged, foreign, non-finite and
oversized files; the directory must be unchanged byte for byte afterwards. Skipped when did-plugins-dynamic is
not installed.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest
import torch

import toys
from did_core.cli import main
from did_core.hookspecs import hookimpl
from did_core.plugins import get_policy_block, registry
from did_core.policy import BackwardInduction, TreeMDP, solve_policy
from did_core.registry import DuplicateNameError, UnknownNameError
from run_helpers import snapshot

needs_plugin = pytest.mark.skipif("dynamic" not in registry("mechanisms"), reason="did-plugins-dynamic is not installed")

TYPES = {"setting": "sales-asym", "n": 2, "m": 2, "upper": [1.0, 0.5]}


def _variant(base: dict, key: str, value) -> dict:
    return {**base, key: value}


def _files(root: Path) -> None:
    (root / "types.json").write_text(json.dumps(TYPES))
    (root / "garbage.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "nan_upper.json").write_text(json.dumps(TYPES).replace("0.5", "NaN"))
    (root / "inf_upper.json").write_text(json.dumps(TYPES).replace("0.5", "Infinity"))
    with open(root / "huge.json", "wb") as handle:  # sparse: 40 MiB of nothing, over the file limit
        handle.truncate(40 << 20)
    variants = {
        "negative_upper": _variant(TYPES, "upper", [1.0, -0.5]),
        "short_upper": _variant(TYPES, "upper", [1.0]),
        "unknown_key": _variant(TYPES, "extra", 1),
        "bool_n": _variant(TYPES, "n", True),
        "many_agents": _variant(TYPES, "n", 10**9),
        "unknown_setting": _variant(TYPES, "setting", "auction"),
        "float_m": _variant(TYPES, "m", 2.0),
    }
    for name, data in variants.items():
        (root / f"{name}.json").write_text(json.dumps(data))
    (root / "not_a_run").mkdir()
    damaged = root / "damaged_run"
    damaged.mkdir()
    (damaged / "config.json").write_text('{"task": "dynamic", "setting": "sales-sym", "n": 2, "m": 2, '
                                         '"train": {"steps": "many"}}')
    foreign = root / "foreign_run"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"task": "dynamic", "setting": "sales-sym", "n": 99, "m": 2, "train": {}}')


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dynamic_hostile")
    _files(root)
    if "dynamic" in registry("mechanisms"):
        assert main(["train", "--task", "dynamic", "--setting", "sales-sym", "--n", "2", "--m", "2", "--steps", "2",
                     "--batch", "8", "--starts", "1", "--validate-every", "2", "--validation-profiles", "50",
                     "--eval-profiles", "50", "--run-dir", str(root / "run")]) == 0
        broken = root / "broken_mechanism_run"
        broken.mkdir()
        (broken / "config.json").write_text((root / "run" / "config.json").read_text())
        mechanism = json.loads((root / "run" / "mechanism.json").read_text())
        mechanism["weights"] = [float("nan"), 1.0]
        (broken / "mechanism.json").write_text(json.dumps(mechanism))
    return root


TRAIN = ["train", "--task", "dynamic", "--setting", "sales-sym", "--n", "2", "--m", "2"]

CASES = {
    "train_steps_zero": [*TRAIN, "--run-dir", "new", "--steps", "0"],
    "train_steps_huge": [*TRAIN, "--run-dir", "new", "--steps", "1000000000"],
    "train_batch_nan": [*TRAIN, "--run-dir", "new", "--batch", "nan"],
    "train_lr_inf": [*TRAIN, "--run-dir", "new", "--lr", "inf"],
    "train_lr_negative": [*TRAIN, "--run-dir", "new", "--lr", "-1"],
    "train_alpha_zero": [*TRAIN, "--run-dir", "new", "--alpha", "0"],
    "train_profiles_huge": [*TRAIN, "--run-dir", "new", "--eval-profiles", "1000000000000"],
    "train_unknown_setting": ["train", "--task", "dynamic", "--setting", "auction", "--n", "2", "--m", "2",
                              "--run-dir", "new"],
    "train_too_many_agents": ["train", "--task", "dynamic", "--setting", "sales-sym", "--n", "99", "--m", "2",
                              "--run-dir", "new"],
    "train_no_run_dir": TRAIN,
    "train_existing_run": [*TRAIN, "--run-dir", "run"],
    "train_resume_not_a_run": ["train", "--task", "dynamic", "--resume", "not_a_run"],
    "train_resume_damaged": ["train", "--task", "dynamic", "--resume", "damaged_run"],
    "train_resume_foreign_cell": ["train", "--task", "dynamic", "--resume", "foreign_run"],
    "train_resume_with_cell": ["train", "--resume", "run", "--setting", "sales-sym"],
    "eval_run_and_shipped": ["eval", "run", "--shipped", "dynamic"],
    "eval_n_without_setting": ["eval", "--shipped", "dynamic", "--n", "2"],
    "eval_no_such_cell": ["eval", "--shipped", "dynamic", "--setting", "sales-sym", "--n", "7", "--m", "2"],
    "eval_profiles_zero": ["eval", "--shipped", "dynamic", "--profiles", "0"],
    "eval_profiles_nan": ["eval", "run", "--profiles", "nan"],
    "eval_nan_mechanism": ["eval", "broken_mechanism_run"],
    "eval_damaged_run": ["eval", "damaged_run"],
    "design_missing": ["design", "dynamic", "missing.json"],
    "design_steps_zero": ["design", "dynamic", "types.json", "--steps", "0"],
    "design_out_is_a_folder": ["design", "dynamic", "types.json", "--steps", "1", "--out", "not_a_run"],
    "design_out_no_parent": ["design", "dynamic", "types.json", "--steps", "1", "--out", "nowhere/x.json"],
    "design_out_in_run": ["design", "dynamic", "types.json", "--steps", "1", "--out", "run/x.json"],
    **{f"design_{name}": ["design", "dynamic", f"{name}.json"] for name in (
        "garbage", "list", "deep", "huge", "nan_upper", "inf_upper", "negative_upper", "short_upper", "unknown_key",
        "bool_n", "many_agents", "unknown_setting", "float_m")},
}


@needs_plugin
@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_one_line_exit_2_nothing_written(workdir, argv, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    capsys.readouterr()
    assert main(list(argv)) == 2
    out = capsys.readouterr()
    assert out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err
    assert snapshot(workdir) == before


class _Shifted(BackwardInduction):
    """A third-party policy block: backward induction (used to check the hook, not new mathematics)."""


plugin = types.ModuleType("did_policy_demo")
plugin.did_register_policy_blocks = hookimpl(lambda register: (register.add("demo-induction", _Shifted),
                                                               register.add("backward-induction", _Shifted)))


def test_a_plugin_registers_policy_blocks_and_a_taken_name_is_refused():
    with toys.installed(plugin, "policy_demo", "did-policy-demo") as state:
        block = get_policy_block("demo-induction")
        mdp = TreeMDP(torch.tensor([[-1, -1]]))
        solution = solve_policy(mdp, torch.tensor([[[0.0, 1.0]]], dtype=torch.float64), 0.0, block)
        assert isinstance(block, _Shifted) and solution.policy.tolist() == [[[0.0, 1.0]]]
        assert not any("demo-induction" in e for e in state.errors)
        with pytest.raises((DuplicateNameError, UnknownNameError), match="did-policy-demo"):
            get_policy_block("backward-induction")
    assert isinstance(get_policy_block("backward-induction"), BackwardInduction)
    assert os.environ.get("DID_LOAD_PLUGINS", "") == os.environ.get("DID_LOAD_PLUGINS", "")
