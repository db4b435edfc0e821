"""What ``deb_marris`` declares to the core through its registration (issue 25, item 2).

The core (the default and evaluation blocks, the contract tests' sweep) reads a block's
capabilities from what the plugin registers, without building it: a factory that hides
them would declare "approximate, every concept", and the sweep would then hand the learned
block concepts it has no weights for.
"""

from did_core.blocks import capabilities_of
from did_core.plugins import create, registry
from did_deb_marris.block import SHIPPED_CONCEPTS


def test_the_registered_block_declares_the_concepts_it_has_weights_for():
    declared = capabilities_of(registry("blocks").get("deb_marris").value)
    assert not declared.exact
    assert declared.concepts == SHIPPED_CONCEPTS == ("cce", "ce")
    assert not declared.supports("capped_cce")
    assert create("blocks", "deb_marris").capabilities == declared


def test_a_weights_file_narrows_the_concepts_to_its_own(random_weights, concept):
    block = create("blocks", "deb_marris", weights=str(random_weights))
    assert block.capabilities.concepts == (concept,)
