"""A third-party concept and a third-party task, each its own installed distribution, found through entry points.

Each distribution is written the way a user would ship it (a module plus a
``*.dist-info`` folder with ``entry_points.txt`` in the group ``did``) into a
folder on ``sys.path``; nothing in ``did_core`` knows them. The concept is a CCE
with an extra linear constraint on the joint (no joint action above a cap); the
exact blocks solve it and ``did solve`` and ``did train`` use it. Its answers are
checked against an independent solve of the same program (rows written with plain
loops, Clarabel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from did_core import plugins
from did_core.cli import main
from did_core.games import classic_game
from did_core.testing import reference_rows, reference_scale

CAP = 0.285  # binds in chicken (its CCE puts 0.289 on each off-diagonal action); 0.28 is infeasible

CONCEPT_SOURCE = f'''
"""A CCE in which no joint action gets more than a share CAP (a third-party concept)."""
import torch
from did_core.concepts import Concept, DenseOperator, StackedOperator, get_concept
from did_core.hookspecs import hookimpl

CAP = {CAP}


class CappedCCE(Concept):
    name = "capped_cce"
    description = "coarse correlated equilibrium with P(a) <= {CAP} for every joint action"

    def operator(self, games, mask):
        cce = get_concept("cce").operator(games, mask)
        eye = torch.eye(cce.joints, dtype=games.dtype, device=games.device)
        return StackedOperator([cce, DenseOperator.extra_rows(cce, (eye - CAP).expand(cce.batch, -1, -1))])


@hookimpl
def did_register_concepts(register):
    register.add(CappedCCE.name, CappedCCE)
'''

TASK_SOURCE = '''
"""Make joint action (0, 0) of a perturbed game of chicken likely by adding a small bonus game (a third-party task)."""
import torch
from did_core.games import classic_game
from did_core.hookspecs import hookimpl
from did_core.nn.generators import PayoffGenerator
from did_core.tasks import ContextSampler, DesignObjective, Options, Task


class Sampler(ContextSampler):
    def sample(self, batch, generator):
        noise = 0.02 * torch.randn(batch, 2, 2, 2, generator=generator)
        return {"base": classic_game("chicken").float() + noise}

    def payoff_features(self, context):
        return context["base"].unsqueeze(1), torch.ones(context["base"].shape[0], 2, 2, dtype=torch.bool)


class Objective(DesignObjective):
    class Options(Options):
        weight: float = 0.01

    def induce(self, context, x):
        return context["base"] + x, torch.ones(x.shape[0], 2, 2, dtype=torch.bool)

    def value(self, context, x, eq):
        return -eq.sigma[:, 0, 0]

    def loss(self, context, x, eq, progress):
        return self.value(context, x, eq).mean() + self.options.weight * x.pow(2).mean(), {}

    def baseline_intervention(self, context):
        return torch.zeros_like(context["base"])


COORD = Task(sampler=Sampler, objective=Objective, generator=PayoffGenerator, size_axis="actions",
             train_profiles={"quick": {"steps": 4, "batch_size": 4}})


@hookimpl
def did_register_tasks(register):
    register.add("coord", COORD)
'''


def _install(site: Path, dist: str, module: str, source: str) -> None:
    """Install a one-module distribution with an entry point in the group ``did`` into ``site``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[did]\n{module} = {module}\n")


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """A folder on ``sys.path`` (and ``PYTHONPATH``) holding the two third-party distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    _install(folder, "did-capped-cce", "did_capped_cce", CONCEPT_SOURCE)
    _install(folder, "did-coord-task", "did_coord_task", TASK_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("DID_LOAD_PLUGINS", raising=False)
    state = plugins.load_plugins(force=True)
    assert not state.errors, state.errors
    yield folder
    monkeypatch.undo()
    plugins.load_plugins(force=True)


def _reference_capped(game: np.ndarray, eps: float) -> np.ndarray:
    """The eps-ME capped CCE by Clarabel, rows written from the definition (independent of the operators)."""
    import cvxpy as cp

    rows, owners = reference_rows(game, "cce")
    tolerance = eps * reference_scale(game)
    sigma = cp.Variable(int(np.prod(game.shape[1:])))
    constraints = [np.array(rows) @ sigma <= np.array([tolerance[o] for o in owners]), sigma <= CAP, cp.sum(sigma) == 1]
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), constraints)
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL
    return np.clip(sigma.value, 0, None).reshape(game.shape[1:])


@pytest.mark.parametrize("block", ["exact_newton", "exact_cvx"])
def test_exact_blocks_solve_the_third_party_concept(site, block):
    # Chicken, slightly perturbed so that one cap binds alone (symmetric chicken binds two at a degenerate point).
    chicken = classic_game("chicken").double() + 0.02 * torch.randn(2, 2, 2, generator=torch.Generator().manual_seed(3),
                                                                     dtype=torch.float64)
    games = torch.stack([chicken, classic_game("matching_pennies").double()]).requires_grad_(True)
    eq = plugins.create("blocks", block)(games, concept="capped_cce", eps=0.05)
    for b in range(2):
        reference = _reference_capped(games[b].detach().numpy(), 0.05)
        np.testing.assert_allclose(eq.sigma[b].detach().numpy(), reference, atol=2e-6)
    assert float(eq.sigma.detach().max()) <= CAP + 1e-7 and float(eq.info["violation"].max()) <= 1e-7
    # The cap binds in chicken ...
    assert float(eq.sigma[0].detach().max()) == pytest.approx(CAP, abs=1e-7)
    # ... and the implicit gradient flows through the extra rows too: central differences agree.
    assert torch.autograd.gradcheck(lambda g: plugins.create("blocks", block)(g, concept="capped_cce").sigma,
                                    (games[:1].detach().requires_grad_(True),), eps=1e-4, atol=1e-5, rtol=1e-3)


def test_did_solve_in_a_fresh_process_finds_the_concept(site, tmp_path):
    game = tmp_path / "chicken.json"
    game.write_text(json.dumps({"payoffs": classic_game("chicken").tolist()}))
    done = subprocess.run([sys.executable, "-m", "did_core.cli", "solve", str(game), "--concept", "capped_cce",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    reference = _reference_capped(classic_game("chicken").numpy(), 0.05)
    np.testing.assert_allclose(np.array(report["joint"]), reference, atol=2e-6)
    listed = subprocess.run([sys.executable, "-m", "did_core.cli", "plugins"], capture_output=True, text=True,
                            timeout=120).stdout
    assert "capped_cce" in listed and "did-capped-cce" in listed and "coord" in listed


def test_did_train_runs_the_third_party_task_under_the_third_party_concept(site, tmp_path):
    run = tmp_path / "run"
    code = main(["train", "--task", "coord", "--concept", "capped_cce", "--eval-contexts", "4",
                 "--generator-options", "{width: 4, depth: 1}", "--run-dir", str(run)])
    assert code == 0
    config = json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())))
    assert config["concept"] == "capped_cce" and config["block"] == "exact_newton"
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["exact_newton"]["contexts"] == 4 and evaluation["exact_newton"]["concept"] == "capped_cce"
