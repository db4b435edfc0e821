"""The contract tests swept over every registered block, concept and task: the contract-test kit
(:mod:`did_core.plugin_checks`, what a plugin author runs on their own distribution) run on everything installed
and on the toys (tests/toys.py), one test per check.

A check that does not concern its subject (an approximate block is not held to the exact answer, a task without
instance files has none to read) is skipped with the reason.
"""

import pytest

import toys
from did_core.blocks import capabilities_of
from did_core.plugin_checks import collect
from did_core.plugins import exact_block_for, registry

with toys.toy_plugins():  # the sweep covers the toys beside whatever is installed
    CHECKS = collect()
    CONCEPTS = registry("concepts").names()


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_contract(check):
    check.assert_passes()


def test_every_concept_has_an_exact_block():
    for concept in CONCEPTS:
        assert capabilities_of(registry("blocks").get(exact_block_for(concept)).value).exact
