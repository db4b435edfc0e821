"""Hostile invocations of the auction commands (``did train --task menu|ama``, ``did eval`` of their runs and
``--shipped``, ``did design menu|ama``): one ``did: error:`` line, exit code 2, nothing written.

Each case runs in a working directory holding a tiny finished menu run and damaged, foreign, non-finite and
oversized exchange files; the directory must be unchanged byte for byte afterwards. Skipped when
did-plugins-auctions (or the exact block its choice uses) is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from did_core.cli import main
from did_core.plugins import registry
from run_helpers import snapshot

pytestmark = pytest.mark.skipif("menu" not in registry("mechanisms") or "exact_newton" not in registry("blocks"),
                                reason="did-plugins-auctions or did-plugins-exact-cvx is not installed")

MENU = {"kind": "menu", "items": 2, "valuation": "additive", "distribution": {"low": [0, 0], "high": [1, 1]},
        "options": [{"alloc": [1, 0], "price": 0.6}]}
AMA = {"kind": "ama", "bidders": 2, "items": 1, "distribution": {"low": [[0], [0]], "high": [[1], [1]]},
       "weights": [1, 1], "outcomes": [{"alloc": [[1], [0]], "boost": 0}, {"alloc": [[0], [1]], "boost": 0}]}
INSTANCE = {"items": 2, "valuation": "additive", "distribution": {"low": [0, 0], "high": [1, 1]}}


def _variant(base: dict, path: list, value) -> dict:
    data = json.loads(json.dumps(base))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _files(root: Path) -> None:
    (root / "menu.json").write_text(json.dumps(MENU))
    (root / "ama.json").write_text(json.dumps(AMA))
    (root / "instance.json").write_text(json.dumps(INSTANCE))
    (root / "garbage.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "nan_price.json").write_text(json.dumps(MENU).replace("0.6", "NaN"))
    (root / "inf_high.json").write_text(json.dumps(INSTANCE).replace("[1, 1]", "[1, Infinity]"))
    with open(root / "huge.json", "wb") as handle:  # sparse: 40 MiB of nothing, over the file limit
        handle.truncate(40 << 20)
    variants = {
        "alloc_over_one": _variant(MENU, ["options", 0, "alloc"], [1.5, 0]),
        "unit_demand_sum": _variant(_variant(MENU, ["valuation"], "unit_demand"), ["options", 0, "alloc"], [1, 1]),
        "no_options": _variant(MENU, ["options"], []),
        "short_alloc": _variant(MENU, ["options", 0, "alloc"], [1]),
        "unknown_key": _variant(MENU, ["extra"], 1),
        "bool_items": _variant(MENU, ["items"], True),
        "many_items": _variant(INSTANCE, ["items"], 10**9),
        "low_above_high": _variant(INSTANCE, ["distribution", "low"], [2, 0]),
        "negative_weight": _variant(AMA, ["weights"], [-1, 1]),
        "oversold_item": _variant(AMA, ["outcomes", 0, "alloc"], [[1], [1]]),
        "string_boost": _variant(AMA, ["outcomes", 0, "boost"], "high"),
        "ama_bidders": _variant(AMA, ["bidders"], 3),
    }
    for name, data in variants.items():
        (root / f"{name}.json").write_text(json.dumps(data))
    (root / "not_a_run").mkdir()
    damaged = root / "damaged_run"
    damaged.mkdir()
    (damaged / "config.json").write_text('{"task": "menu", "settings": {"items": "two"}}')


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("auctions_hostile")
    _files(root)
    assert main(["train", "--task", "menu", "--steps", "3", "--types", "32", "--options", "2", "--width", "4",
                 "--samples", "100", "--run-dir", str(root / "run")]) == 0
    return root


TRAIN = [
    ["train", "--task", "menu", "--low", "0", "nan", "--run-dir", "new"],
    ["train", "--task", "menu", "--low", "1", "1", "--high", "0", "1", "--run-dir", "new"],
    ["train", "--task", "menu", "--low", "0", "--high", "1", "1", "--run-dir", "new"],
    ["train", "--task", "menu", "--low", "-1", "0", "--run-dir", "new"],
    ["train", "--task", "menu", "--options", "0", "--run-dir", "new"],
    ["train", "--task", "menu", "--options", "99999999", "--run-dir", "new"],
    ["train", "--task", "menu", "--steps", "-5", "--run-dir", "new"],
    ["train", "--task", "menu", "--types", "1e12", "--run-dir", "new"],
    ["train", "--task", "menu", "--lr", "inf", "--run-dir", "new"],
    ["train", "--task", "menu", "--eps-start", "0", "--run-dir", "new"],
    ["train", "--task", "menu", "--shift", "1", "0", "--run-dir", "new"],
    ["train", "--task", "menu", "--points", "100", "--low", "0", "0", "0", "0", "--high", "1", "1", "1", "1",
     "--run-dir", "new"],
    ["train", "--task", "menu", "--block", "nope", "--run-dir", "new"],
    ["train", "--task", "menu", "--run-dir", "run"],
    ["train", "--task", "menu", "--run-dir", "menu.json"],
    ["train", "--task", "ama", "--bidders", "5", "--items", "5", "--run-dir", "new"],
    ["train", "--task", "ama", "--bidders", "0", "--run-dir", "new"],
    ["train", "--task", "ama", "--high", "nan", "--run-dir", "new"],
    ["train", "--task", "ama", "--low", "2", "--high", "1", "--run-dir", "new"],
    ["train", "--task", "ama", "--run-dir", "run"],
    ["train", "--resume", "damaged_run"],
]
EVAL = [
    ["eval", "run", "--points", "100"],
    ["eval", "run", "--samples", "0"],
    ["eval", "run", "--samples", "1e15"],
    ["eval", "run", "--seed", "-1"],
    ["eval", "damaged_run"],
    ["eval", "--shipped", "menu", "--samples", "nan"],
    ["eval", "--shipped", "ama", "--samples", "-3"],
]
DESIGN = [
    ["design", "menu", "missing.json"],
    ["design", "menu", "garbage.json"],
    ["design", "menu", "list.json"],
    ["design", "menu", "deep.json"],
    ["design", "menu", "huge.json"],
    ["design", "menu", "not_a_run"],
    ["design", "menu", "inf_high.json", "--lp"],
    ["design", "menu", "many_items.json", "--lp"],
    ["design", "menu", "low_above_high.json", "--lp"],
    ["design", "menu", "instance.json", "--lp", "--points", "1000"],
    ["design", "menu", "instance.json", "--lp", "--points", "nan"],
    ["design", "menu", "instance.json", "--run", "not_a_run"],
    ["design", "menu", "instance.json", "--run", "damaged_run"],
    ["design", "menu", "instance.json", "--lp", "--run", "run"],
    ["design", "menu", "instance.json", "--lp", "--out", "not_a_run"],
    ["design", "menu", "instance.json", "--lp", "--out", "missing_folder/menu.json"],
    ["design", "menu", "instance.json", "--lp", "--out", "run/menu_copy.json"],
    ["design", "menu", "instance.json", "--lp", "--out", "/dev/full"],
    ["design", "ama", "instance.json"],
    ["design", "ama", "nan_price.json"],
    ["design", "ama", "huge.json"],
    ["design", "ama", "deep.json"],
    ["design", "ama", "--samples", "0", "menu.json"],
] + [["design", "ama", f"{name}.json"] for name in (
    "alloc_over_one", "unit_demand_sum", "no_options", "short_alloc", "unknown_key", "bool_items",
    "negative_weight", "oversold_item", "string_boost", "ama_bidders")]

CASES = TRAIN + EVAL + DESIGN


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(a) for a in CASES])
def test_hostile_auction_invocation_is_one_error_line_and_changes_nothing(workdir, monkeypatch, capsys, argv):
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 2, (out.out, out.err)
    assert out.err.startswith("did: error:") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err + out.out
    assert snapshot(workdir) == before


VALID = [
    ["design", "ama", "menu.json", "--samples", "1000"],
    ["design", "ama", "ama.json", "--samples", "1000"],
    ["design", "menu", "instance.json", "--lp", "--points", "3"],
    ["design", "menu", "instance.json", "--samples", "1000"],  # the shipped generator that covers it
    ["eval", "--shipped", "menu", "--samples", "1000"],
    ["eval", "--shipped", "ama", "--samples", "1000"],
]


@pytest.mark.parametrize("argv", VALID, ids=[" ".join(a) for a in VALID])
def test_valid_read_only_auction_invocation_exits_0_and_changes_nothing(workdir, monkeypatch, capsys, argv):
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0 and "did: error" not in out.err, out.err
    assert snapshot(workdir) == before
