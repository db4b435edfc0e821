"""Registers the block ``no_regret`` with DID (the class itself, so that its capabilities are visible)."""

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_no_regret.block import NoRegretBlock


@hookimpl
def did_register_blocks(register: Registry) -> None:
    register.add(NoRegretBlock.name, NoRegretBlock)
