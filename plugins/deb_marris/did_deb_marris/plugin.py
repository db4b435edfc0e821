"""Registers the learned block ``deb_marris`` and the ``did deb`` command with DID.

The block is registered as its class, so that its ``capabilities`` (not exact; the concepts it ships weights
for) are visible to the core and to the contract tests without building it.
"""

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_deb_marris.block import DebMarrisBlock


def _command(argv: list[str]) -> int:
    """pretrain, export, card and validate the learned block deb_marris"""
    from did_deb_marris.cli import main

    return main(argv)


@hookimpl
def did_register_blocks(register: Registry) -> None:
    register.add(DebMarrisBlock.name, DebMarrisBlock)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("deb", _command)
