"""The contract-test kit itself (did_core.plugin_checks): a plugin that breaks a promise fails the check of that
promise with a one-line reason, the command prints one row per check and exits 1, and the independent solver
agrees with the CE/CCE reference written from the definitions."""

from __future__ import annotations

import types
from typing import ClassVar

import numpy as np
import pytest
import torch

import toys
from did_core.blocks import Capabilities, Equilibrium, EquilibriumBlock
from did_core.default_plugins.concepts import CoarseCorrelated
from did_core.deviations import ActionDeviations
from did_core.hookspecs import hookimpl
from did_core.plugin_checks import block_checks, collect, concept_checks, reference_joint
from did_core.plugin_checks.__main__ import main
from did_core.plugin_checks.games import EPS, FAMILIES
from did_core.plugins import get_concept
from did_core.tasks import Task


def _outcomes(checks) -> dict[str, tuple[str, str]]:
    return {check.name: (outcome.status, outcome.reason) for check in checks for outcome in [check.run()]}


class EverywhereBlock(EquilibriumBlock):
    """Uniform over every joint action, padded ones too; it claims to be exact."""

    name = "everywhere"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=True)

    def solve(self, games, mask, cons, alpha0) -> Equilibrium:
        sigma = torch.full((len(games), cons.operator.joints), 1.0 / cons.operator.joints, dtype=games.dtype)
        return Equilibrium(cons.unflatten_joint(sigma), None, cons.epsilon.per_player(games.detach(), mask),
                           cons.concept)


class DoubledTranspose(ActionDeviations):
    """CCE rows whose ``transpose`` is twice what the rows say."""

    def transpose(self, alpha):
        return 2 * super().transpose(alpha)


class Inconsistent(CoarseCorrelated):
    name = "inconsistent"

    def operator(self, games, mask):
        return DoubledTranspose(games, mask)


def test_a_block_that_puts_mass_on_padding_fails_with_one_line_reasons():
    outcomes = _outcomes(block_checks(EverywhereBlock, get_concept("cce"), quick=True))
    status, reason = outcomes["shapes, distributions, zero mass on padding"]
    assert status == "FAIL" and "on padded joint actions" in reason and "\n" not in reason
    status, reason = outcomes["agrees with an independent solver"]
    assert status == "FAIL" and "away from the independent solver's" in reason
    assert outcomes["size guard in one line"][0] == "SKIP"


def test_a_concept_whose_products_disagree_fails_and_the_core_concepts_pass():
    outcomes = _outcomes(concept_checks(Inconsistent(), quick=True)[:3])
    assert outcomes["operator products equal its dense rows"] == (
        "FAIL", "padded 2-player 4x4 games: transpose(alpha) differs from D^T alpha")
    assert outcomes["zero rows and columns on padding"][0] == "PASS"
    assert {status for status, _ in _outcomes(concept_checks(get_concept("ce"), quick=True)).values()} == {"PASS"}


def test_a_concept_that_ignores_its_options_fails_the_options_check():
    class Lenient(CoarseCorrelated):
        name = "lenient"

        def __init__(self, **options):
            super().__init__()

    status, reason = _outcomes(concept_checks(Lenient()))["options validated in one line"]
    assert status == "FAIL" and reason == "option no_such_option=1 is accepted"


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_the_independent_solver_agrees_with_the_definitions_solved_by_clarabel(concept):
    testing = pytest.importorskip("did_core.testing")
    pytest.importorskip("cvxpy")
    for family in FAMILIES:
        games, mask = family.draw(3)
        joints = reference_joint(games, mask, get_concept(concept), EPS)
        for b, counts in enumerate(family.real):
            real = tuple(slice(0, n) for n in counts)
            reference = testing.reference_solve(games[b][(slice(None), *real)].numpy(), concept, EPS.value)
            np.testing.assert_allclose(joints[b][real].numpy(), reference, atol=5e-6)
            assert float(joints[b].sum()) == pytest.approx(1.0, abs=1e-12)


class BeatenBound(toys.ToyObjective):
    """The toy objective (minimise -P(0, 0)) with a bound of 0, which every intervention beats."""

    def bound(self, context):
        return torch.zeros(context["base"].shape[0])


faulty = types.ModuleType("did_faulty")
faulty.did_register_blocks = hookimpl(lambda register: register.add("everywhere", EverywhereBlock))
faulty.did_register_tasks = hookimpl(lambda register: register.add("beaten", Task(
    sampler=toys.ToySampler, objective=BeatenBound, generator=toys.TOY.generator, description="a bound too low")))


def test_the_command_prints_one_row_per_check_and_exits_1_on_a_failure(capsys):
    with toys.installed(faulty, "faulty", "did-faulty"):
        checks = collect("did-faulty")
        assert main(["did-faulty", "--quick"]) == 1
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("PASS  distribution did-faulty: loads without errors")
    failed = [row for row in rows if row.startswith("FAIL")]
    assert "FAIL  block everywhere with cce: shapes, distributions, zero mass on padding" in "\n".join(failed)
    assert any(row.startswith("FAIL  task beaten: bound never beaten") and "beats the bound" in row for row in failed)
    assert any(row.startswith("SKIP  task beaten: did design on its example instance") for row in rows)
    assert rows[-1].endswith("skipped (not applicable)") and f"{len(failed)} failed" in rows[-1]
    assert len(rows) == len(checks) + 1


@pytest.mark.parametrize("argv, message", [
    (["no-such-distribution"], "distribution 'no-such-distribution' registers no block, concept or task"),
    (["--task", "no_such_task"], "unknown task 'no_such_task'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_a_wrong_command_line_is_one_error_line(argv, message, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("did: error:") and err.count("\n") == 1 and message in err


def test_named_checks_of_the_core_concepts_pass_through_the_command(capsys):
    assert main(["--concept", "cce", "--quick"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 7 and all(row.startswith("PASS  concept cce: ") for row in rows[:-1])
