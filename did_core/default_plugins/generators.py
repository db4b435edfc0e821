"""Core generator architectures, registered like any plugin's."""

from did_core.hookspecs import hookimpl
from did_core.nn.generators import PayoffGenerator
from did_core.registry import Registry


@hookimpl
def did_register_generators(register: Registry) -> None:
    register.add("p2p", PayoffGenerator)
