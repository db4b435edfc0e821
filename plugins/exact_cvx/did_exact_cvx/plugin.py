"""Registers the exact blocks with DID."""

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_exact_cvx.ecos_block import EcosBlock
from did_exact_cvx.newton import NewtonBlock


@hookimpl
def did_register_blocks(register: Registry) -> None:
    register.add("exact_cvx", EcosBlock)
    register.add("exact_newton", NewtonBlock)
