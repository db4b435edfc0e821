"""Ctrl-C during an ECOS solve reaches Python: ``did solve`` exits 130, and no fallback solver answers instead.

ECOS installs its own SIGINT handler while it runs and ends early, reporting a
failure (cvxpy then tries the next solver) or an inaccurate optimum.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import ecos
import numpy as np
import pytest
import torch

from did_core.plugins import get_concept
from did_core.equilibria import Epsilon, constraints
from did_exact_cvx.ecos_block import ECOS_OPTIONS, caught_sigint, solve_game

# In the subprocess: Ctrl-C (SIGINT from another process, as a terminal sends it) 0.1 s after ECOS starts, after
# cvxpy's compilation; ECOS's iteration count shows whether it stopped early.
SCRIPT = """
import os, subprocess, sys
import ecos
solve = ecos.solve
def interrupted_solve(*args, **kwargs):
    subprocess.Popen(["sh", "-c", f"sleep 0.1; kill -INT {os.getpid()}"])
    out = solve(*args, **kwargs)
    print(f"ECOS iterations: {out['info']['iter']}", file=sys.stderr)
    return out
ecos.solve = interrupted_solve
from did_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _slow_game() -> np.ndarray:
    """A 16x16 zero-sum game on which ECOS runs all its iterations for CE at eps 1e-6 (about a second)."""
    a = np.random.default_rng(0).standard_normal((16, 16))
    return np.stack([a, -a])


def test_ctrl_c_during_ecos_exits_130_without_a_fallback(tmp_path):
    game = tmp_path / "zero_sum.json"
    game.write_text(json.dumps({"payoffs": _slow_game().tolist()}))
    done = subprocess.run([sys.executable, "-c", SCRIPT, "solve", str(game), "--block", "exact_cvx", "--concept", "ce",
                           "--eps", "1e-6", "--absolute"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stdout == "" and "interrupted" in done.stderr
    assert "CLARABEL" not in done.stderr and "SCS" not in done.stderr  # no fallback solver was asked
    iterations = [int(line.split(":")[1]) for line in done.stderr.splitlines() if line.startswith("ECOS iterations")]
    assert len(iterations) == 1 and iterations[0] < ECOS_OPTIONS["max_iters"]  # the signal reached ECOS mid-solve


@pytest.fixture
def ecos_reports_a_ctrl_c_once(monkeypatch):
    """ECOS solves for real, but its first answer says it caught a SIGINT (exit flag -4)."""
    real, flags = ecos.solve, []

    def solve(*args, **kwargs):
        out = real(*args, **kwargs)
        flags.append(out["info"]["exitFlag"])
        if len(flags) == 1:
            out["info"]["exitFlag"] = -4
        return out

    monkeypatch.setattr(ecos, "solve", solve)
    return flags


def _chicken() -> tuple[np.ndarray, np.ndarray]:
    games = torch.tensor([[[[6.0, 2.0], [7.0, 0.0]], [[6.0, 7.0], [2.0, 0.0]]]], dtype=torch.float64)
    cons = constraints(games, torch.ones(1, 2, 2, dtype=torch.bool), get_concept("ce"), Epsilon(0.05))
    return cons.gains[0].numpy(), cons.eps[0].numpy()


def test_a_caught_ctrl_c_is_a_keyboard_interrupt_not_a_fallback(ecos_reports_a_ctrl_c_once):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            solve_game(*_chicken())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(ecos_reports_a_ctrl_c_once) == 1


def test_a_handler_that_only_notes_the_stop_gets_the_same_solver_again(ecos_reports_a_ctrl_c_once):
    """As ``did train``'s handler does: it stops at the next step boundary, so this step's solve must finish."""
    requests = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: requests.append(signum))
    try:
        sigma, _, solver = solve_game(*_chicken())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert requests == [signal.SIGINT] and solver == "ECOS" and len(ecos_reports_a_ctrl_c_once) == 2
    assert abs(sigma.sum() - 1) < 1e-9


@pytest.mark.parametrize("solver, raw, caught", [
    ("ECOS", {"info": {"exitFlag": -4}}, True),
    ("ECOS", {"info": {"exitFlag": 0}}, False),
    ("SCS", {"info": {"status_val": -5}}, True),
    ("SCS", {"info": {"status_val": 1}}, False),
    ("CLARABEL", {"info": {"exitFlag": -4}}, False),
    ("ECOS", None, False),
])
def test_caught_sigint_reads_each_solvers_code(solver, raw, caught):
    assert caught_sigint(solver, raw) is caught
