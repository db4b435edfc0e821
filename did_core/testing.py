"""Test helpers for DID and its plugins: an independent eps-ME (C)CE reference solver, and a check
that ``did design`` refuses a malformed instance file (:func:`assert_design_refuses`).

It shares no code with ``did_core.equilibria``: constraints are written from the
definitions in docs/mathematics.md, section 2, one row at a time with plain loops, and the
program is solved by Clarabel (an interior-point solver other than the exact
block's ECOS). ``reference_rows`` and ``reference_scale`` are plain numpy;
``reference_solve`` needs cvxpy, which did-core does not depend on: install the
extra ``pip install 'did-core[testing]'`` (the exact-block plugin installs it too).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from did_core.cli import main


def reference_rows(game: np.ndarray, concept: str) -> tuple[list[list[float]], list[int]]:
    """Constraint rows (over joint actions in C order) and the player owning each row."""
    n = game.shape[0]
    sizes = game.shape[1:]
    joints = list(itertools.product(*[range(s) for s in sizes]))
    rows, owners = [], []
    for p in range(n):
        if concept == "cce":
            for d in range(sizes[p]):
                row = []
                for a in joints:
                    dev = list(a)
                    dev[p] = d
                    row.append(game[(p, *dev)] - game[(p, *a)])
                rows.append(row)
                owners.append(p)
        else:
            for r in range(sizes[p]):
                for d in range(sizes[p]):
                    if r == d:
                        continue
                    row = []
                    for a in joints:
                        if a[p] != r:
                            row.append(0.0)
                            continue
                        dev = list(a)
                        dev[p] = d
                        row.append(game[(p, *dev)] - game[(p, *a)])
                    rows.append(row)
                    owners.append(p)
    return rows, owners


def reference_scale(game: np.ndarray) -> np.ndarray:
    """s_p: RMS of G[p] after removing, per a_{-p}, the mean over p's own actions."""
    out = []
    for p in range(game.shape[0]):
        g = game[p]
        centred = g - g.mean(axis=p, keepdims=True)
        out.append(np.sqrt(np.mean(centred**2)))
    return np.array(out)


def reference_solve(game: np.ndarray, concept: str, eps: float, relative: bool = True) -> np.ndarray:
    """The eps-ME (C)CE of one game ``[N, A_1..A_N]`` as an array ``[A_1..A_N]``.

    Needs cvxpy (``pip install 'did-core[testing]'``); without it, an ``ImportError`` saying so.
    """
    try:
        import cvxpy as cp  # optional: the extra did-core[testing]
    except ImportError as exc:
        raise ImportError("did_core.testing.reference_solve needs cvxpy: pip install 'did-core[testing]'") from exc
    game = np.asarray(game, dtype=float)
    rows, owners = reference_rows(game, concept)
    eps_p = eps * reference_scale(game) if relative else np.full(game.shape[0], eps)
    D = np.array(rows) if rows else np.zeros((0, int(np.prod(game.shape[1:]))))
    e = np.array([eps_p[o] for o in owners])

    sigma = cp.Variable(D.shape[1])
    rows = [D @ sigma <= e] if len(D) else []
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), rows + [cp.sum(sigma) == 1])
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL, problem.status
    x = np.clip(sigma.value, 0, None)
    return (x / x.sum()).reshape(game.shape[1:])


def assert_design_refuses(task: str, path: Path, content: Any, capsys: Any) -> None:
    """``did design TASK path`` on a malformed instance: exit 2, one ``did: error:`` line naming the file.

    ``content`` is written to ``path`` first: text as it is, another value as JSON, ``None`` as a
    directory. Nothing is printed on stdout and nothing is written beside the file. ``capsys`` is
    pytest's fixture.
    """
    if content is None:
        path.mkdir()
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    before = sorted(p.name for p in path.parent.iterdir())
    code = main(["design", task, str(path), "--optimise", "--steps", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out)
    assert err.startswith("did: error:") and err.count("\n") == 1 and str(path) in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in path.parent.iterdir()) == before
