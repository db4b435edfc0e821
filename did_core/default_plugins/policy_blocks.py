"""Core policy blocks (docs/mathematics.md, "The policy block"), registered like any plugin's."""

from did_core.hookspecs import hookimpl
from did_core.policy import BackwardInduction, SoftValueIteration
from did_core.registry import Registry


@hookimpl
def did_register_policy_blocks(register: Registry) -> None:
    register.add("backward-induction", BackwardInduction)
    register.add("value-iteration", SoftValueIteration)
