"""Registers the learned block ``deb_marris`` and the ``did deb`` command with DID."""

from did_core.hookspecs import hookimpl
from did_core.registry import Registry


def _block(**options):
    from did_deb_marris.block import DebMarrisBlock

    return DebMarrisBlock(**options)


def _command(argv: list[str]) -> int:
    from did_deb_marris.cli import main

    return main(argv)


@hookimpl
def did_register_blocks(register: Registry) -> None:
    register.add("deb_marris", _block)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("deb", _command)
