"""The example plugins of ``examples/`` (a block, a concept, a task), each its own installed distribution.

Each example folder becomes an installed distribution the way ``pip install -e``
makes one, without pip or a network: the folder goes on ``sys.path`` (and
``PYTHONPATH``, for fresh processes) beside a ``*.dist-info`` folder holding the
name, version and entry points its ``pyproject.toml`` declares. Nothing in
``did_core`` knows them. The concept is a CCE with an extra linear constraint on
the joint (no joint action above a cap); the exact blocks solve it, checked
against an independent solve of the same program (rows written with plain loops,
Clarabel). In fresh processes ``did plugins`` lists the three, ``did solve --block
scipy_dual`` gives the exact block's answer and ``did train --task cournot``
trains and evaluates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from did_core import plugins
from did_core.plugins import get_concept
from did_core.games import classic_game
from did_core.testing import reference_rows, reference_scale

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FOLDERS = ("third_party_block", "third_party_concept", "third_party_task")
if not all((EXAMPLES / folder).is_dir() for folder in FOLDERS):
    pytest.skip("the examples/ folder of the repository is not here", allow_module_level=True)
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")


def _project(folder: str) -> dict:
    return tomllib.loads((EXAMPLES / folder / "pyproject.toml").read_text())


def _install(site: Path, folder: str) -> None:
    """Install ``examples/folder`` into ``site`` as ``pip install -e`` would: the metadata and entry points of its
    ``pyproject.toml`` in a ``*.dist-info`` folder; its modules stay where they are (put the folder on the path)."""
    project = _project(folder)["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = "".join(f"{name} = {value}\n" for name, value in project["entry-points"]["did"].items())
    (info / "entry_points.txt").write_text("[did]\n" + points)


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """The three examples installed: their folders and a folder of their ``*.dist-info`` on the path."""
    folder = tmp_path / "site"
    folder.mkdir()
    for example in FOLDERS:
        _install(folder, example)
    paths = [str(folder), *(str(EXAMPLES / example) for example in FOLDERS)]
    for path in paths:
        monkeypatch.syspath_prepend(path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("DID_LOAD_PLUGINS", raising=False)
    state = plugins.load_plugins(force=True)
    assert not state.errors, state.errors
    yield folder
    monkeypatch.undo()
    plugins.load_plugins(force=True)


def _cap() -> float:
    from did_example_concept import CAP

    return CAP


def _did(*argv: str) -> subprocess.CompletedProcess:
    """``did ARGV`` in a fresh process (it finds the plugins through their entry points alone)."""
    done = subprocess.run([sys.executable, "-m", "did_core.cli", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _reference_capped(game: np.ndarray, eps: float) -> np.ndarray:
    """The eps-ME capped CCE by Clarabel, rows written from the definition (independent of the operators)."""
    import cvxpy as cp

    rows, owners = reference_rows(game, "cce")
    tolerance = eps * reference_scale(game)
    sigma = cp.Variable(int(np.prod(game.shape[1:])))
    constraints = [np.array(rows) @ sigma <= np.array([tolerance[o] for o in owners]), sigma <= _cap(),
                   cp.sum(sigma) == 1]
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), constraints)
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL
    return np.clip(sigma.value, 0, None).reshape(game.shape[1:])


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_example_is_a_distribution_a_user_installs(folder):
    """Its pyproject declares a range of did-core (torch never pinned), ships its module or package, and names an
    entry point of the group ``did``; its README says how to install it."""
    config = _project(folder)
    dependencies = config["project"]["dependencies"]
    assert len([d for d in dependencies if re.fullmatch(r"did-core>=[\d.]+,<[\d.]+", d)]) == 1
    assert not [d for d in dependencies if d.startswith("torch") and "==" in d]
    setuptools = config["tool"]["setuptools"]
    modules = setuptools.get("py-modules", []) + setuptools.get("packages", [])
    assert modules and all((EXAMPLES / folder / f"{module}.py").is_file()
                           or (EXAMPLES / folder / module / "__init__.py").is_file() for module in modules)
    assert set(config["project"]["entry-points"]["did"].values()) <= set(modules)
    assert f"pip install -e examples/{folder}" in (EXAMPLES / folder / "README.md").read_text()


@pytest.mark.parametrize("block", ["exact_newton", "exact_cvx"])
def test_exact_blocks_solve_the_third_party_concept(site, block):
    # Chicken, slightly perturbed so that one cap binds alone (symmetric chicken binds two at a degenerate point).
    chicken = classic_game("chicken").double() + 0.02 * torch.randn(2, 2, 2, generator=torch.Generator().manual_seed(3),
                                                                     dtype=torch.float64)
    games = torch.stack([chicken, classic_game("matching_pennies").double()]).requires_grad_(True)
    eq = plugins.create("blocks", block)(games, concept=get_concept("capped_cce"), eps=0.05)
    for b in range(2):
        reference = _reference_capped(games[b].detach().numpy(), 0.05)
        np.testing.assert_allclose(eq.sigma[b].detach().numpy(), reference, atol=2e-6)
    assert float(eq.sigma.detach().max()) <= _cap() + 1e-7 and float(eq.info["violation"].max()) <= 1e-7
    # The cap binds in chicken ...
    assert float(eq.sigma[0].detach().max()) == pytest.approx(_cap(), abs=1e-7)
    # ... and the implicit gradient flows through the extra rows too: central differences agree.
    assert torch.autograd.gradcheck(lambda g: plugins.create("blocks", block)(g, concept=get_concept("capped_cce")).sigma,
                                    (games[:1].detach().requires_grad_(True),), eps=1e-4, atol=1e-5, rtol=1e-3)


def test_did_plugins_and_did_solve_in_a_fresh_process_find_the_examples(site, tmp_path):
    listed = _did("plugins").stdout
    for name in ("did-example-block", "scipy_dual", "did-example-concept", "capped_cce", "did-example-task",
                 "cournot"):
        assert name in listed, name
    game = tmp_path / "chicken.json"
    game.write_text(json.dumps({"payoffs": classic_game("chicken").tolist()}))
    # The example concept under the preferred exact block, then under the example block.
    default = json.loads(_did("solve", str(game), "--concept", "capped_cce", "--json").stdout)
    np.testing.assert_allclose(np.array(default["joint"]), _reference_capped(classic_game("chicken").numpy(), 0.05),
                               atol=2e-6)
    example = json.loads(_did("solve", str(game), "--concept", "capped_cce", "--block", "scipy_dual", "--json").stdout)
    np.testing.assert_allclose(np.array(example["joint"]), np.array(default["joint"]), atol=1e-6)


def test_did_train_in_a_fresh_process_trains_and_evaluates_the_example_task(site, tmp_path):
    """The example task trains through the preferred exact block and is evaluated also under the example block."""
    run = tmp_path / "run"
    _did("train", "--task", "cournot", "--exact-block", "scipy_dual", "--steps", "2", "--batch-size", "4",
         "--eval-contexts", "4", "--generator-options", "{width: 4, depth: 1}", "--run-dir", str(run))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["task"] == "cournot" and config["block"] == "exact_newton"
    assert config["exact_block"] == "scipy_dual" and config["lr"] == 3e-3  # the example's quick profile
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["scipy_dual"]["contexts"] == evaluation["exact_newton"]["contexts"] == 4
    # Both exact blocks score the same interventions alike.
    assert evaluation["scipy_dual"]["metric"] == pytest.approx(evaluation["exact_newton"]["metric"], abs=1e-6)
