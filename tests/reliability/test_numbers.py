"""Numbers at float64's limits: refused in one line where they cannot be computed with, solved where they can.

``did solve`` solves a game divided by the power of two that brings its largest
payoff near 1 (exact, and the same equilibria), so a game scaled by 1e-300 or 3e306
no longer underflows or overflows inside the solver; an absolute ``--eps`` as large
as float64 allows is accepted (every joint meets it). An integer literal beyond
float64's range in an instance file is refused where it is checked.
"""

from __future__ import annotations

import json

import pytest
import torch

from did_core.cli import main
from did_core.instance_files import InstanceError, array
from did_core.plugins import exact_block_for, registry

GAME = [[[6, 2], [7, 0]], [[6, 7], [2, 0]]]


def _solved(tmp_path, capsys, payoffs: list, *flags: str) -> dict:
    game = tmp_path / "game.json"
    game.write_text(json.dumps({"payoffs": payoffs}))
    assert main(["solve", str(game), "--json", *flags]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _one_error(capsys, start: str) -> None:
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith(f"did: error: {start}") and out.err.count("\n") == 1, out.err


@pytest.mark.parametrize("factor", [1e-300, 3e306])
@pytest.mark.parametrize("block", ["preferred exact", "deb_marris"])
def test_payoffs_near_float64_limits_have_the_equilibria_of_the_game_rescaled(tmp_path, capsys, block, factor):
    """Scaled by 1e-300 the game underflowed in the solver (a warning, then "did not converge"); by 3e306 it
    overflowed ("not finite")."""
    if block == "preferred exact":
        block = exact_block_for("cce")
    elif block not in registry("blocks"):
        pytest.skip(f"the learned block {block!r} is not loaded (did-plugins-deb-marris not installed, "
                    f"or left out by DID_LOAD_PLUGINS)")
    base = [[[1, -1], [3, 0]], [[1, 0.2], [-1, 0.5]]]
    plain = _solved(tmp_path, capsys, base, "--block", block)
    scaled = _solved(tmp_path, capsys, [[[x * factor for x in row] for row in p] for p in base], "--block", block)
    assert sum(scaled["joint"], []) == pytest.approx(sum(plain["joint"], []), abs=1e-9)
    assert scaled["gap"] == pytest.approx(plain["gap"] * factor, rel=1e-6, abs=1e-6 * factor)
    assert scaled["eps"] == pytest.approx([e * factor for e in plain["eps"]], rel=1e-9)


def test_the_text_report_shows_a_tiny_tolerance(tmp_path, capsys):
    (tmp_path / "tiny.json").write_text(json.dumps({"payoffs": [[[x * 1e-300 for x in r] for r in p] for p in GAME]}))
    assert main(["solve", str(tmp_path / "tiny.json")]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "per player [3.95285e-302, 3.95285e-302]" in out.out  # was [0.0, 0.0]


def test_a_huge_absolute_eps_is_accepted(tmp_path, capsys):
    """``--eps 1e308 --absolute`` was refused as "payoffs too large" (the check held the eps in float32); every joint
    meets it, so the answer is the uniform joint."""
    report = _solved(tmp_path, capsys, GAME, "--eps", "1e308", "--absolute")
    assert sum(report["joint"], []) == pytest.approx([0.25] * 4) and report["eps"] == [1e308, 1e308]


def test_an_eps_beyond_float64_next_to_the_payoffs_is_named(tmp_path, capsys):
    (tmp_path / "huge.json").write_text(json.dumps({"payoffs": [[[x * 1e300 for x in r] for r in p] for p in GAME]}))
    assert main(["solve", str(tmp_path / "huge.json"), "--eps", "1e308"]) == 2
    _one_error(capsys, "--eps 1e+308 is too large")
    assert main(["solve", str(tmp_path / "huge.json"), "--eps", "1e-300", "--absolute"]) == 2
    _one_error(capsys, "--eps 1e-300 is too small for payoffs as large as 7e+300")


def test_an_instance_number_beyond_float64_is_an_instance_error():
    """``math.isfinite(10**400)`` raised OverflowError (a traceback from ``did design``)."""
    with pytest.raises(InstanceError, match=r"'values\[1\]' must be a finite number \(float64\), got 1000"):
        array([1, 10**400], "values", (2,))
    with pytest.raises(InstanceError, match=r"got \[0, 1, 2, .*\.\.\.$"):
        array([list(range(10**5)), 1], "values", (2,))
    assert torch.equal(array([1, 2**60], "values", (2,)), torch.tensor([1.0, 2.0**60], dtype=torch.float64))
