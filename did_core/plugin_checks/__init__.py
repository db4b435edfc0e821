"""A contract-test kit for plugin authors: the checks DID runs on its own equilibrium blocks, concepts and tasks,
runnable on any installed distribution with one command::

    python -m did_core.plugin_checks DISTRIBUTION [--quick]

It checks every block, concept and task ``DISTRIBUTION`` registers (``--block``, ``--concept``, ``--task NAME``
add named ones; with nothing given, everything registered) and prints one row per check: ``PASS``, ``FAIL`` with
the reason in one line, or ``SKIP`` with why the check does not apply (a task without instance files has none to
read); the exit code is 1 when a check fails. In a plugin's own pytest suite::

    import pytest
    from did_core.plugin_checks import collect

    @pytest.mark.parametrize("check", collect("did-example-block", quick=True), ids=str)
    def test_contract(check):
        check.assert_passes()

or, for objects not registered yet, :func:`block_checks`, :func:`concept_checks` (and, for registered tasks,
:func:`task_checks`, :func:`file_checks`). What each check promises, with its tolerance and why:

* blocks, under every concept they support (:mod:`did_core.plugin_checks.blocks`): shapes and zero mass on
  padding for padded, non-square and 3-player games, distributions, invariance to the payoff embedding, agreement
  of exact blocks with an independent solver (:mod:`did_core.plugin_checks.reference`), a double-precision
  gradcheck, the size guard in one line;
* concepts (:mod:`did_core.plugin_checks.concepts`): operator products equal to the dense rows, zero padding rows
  and columns, dual shape and mask of non-square games, options validated in one line, solved by the preferred
  exact block as by the independent solver, with exact gradients;
* tasks (:mod:`did_core.plugin_checks.tasks`, :mod:`did_core.plugin_checks.commands`): a reproducible sampler,
  valid induced games, a finite loss with gradients into the generator, sliceable contexts, consistent extents
  and padding, a bound never beaten, ``did design`` on the example instance file, malformed files refused in one
  line, shipped generators unchanged by ``did eval --shipped`` and ``did design``.

The checks solve with the preferred installed exact block (:func:`did_core.plugins.exact_block_for`).
"""

from did_core.plugin_checks.blocks import block_checks
from did_core.plugin_checks.checks import Check, CheckFailed, NotApplicable, Outcome
from did_core.plugin_checks.collect import collect
from did_core.plugin_checks.commands import design_refusal, file_checks
from did_core.plugin_checks.concepts import concept_checks
from did_core.plugin_checks.reference import reference_joint
from did_core.plugin_checks.tasks import task_checks

__all__ = ["collect", "Check", "Outcome", "CheckFailed", "NotApplicable", "block_checks", "concept_checks",
           "task_checks", "file_checks", "design_refusal", "reference_joint"]
