"""The ``dynamic`` mechanism task: dynamic affine maximizers on MDPs (did train / eval / design)."""

from did_core.hookspecs import hookimpl
from did_core.mechanism_task import MechanismTask
from did_core.registry import Registry
from did_dynamic.commands import SHIPPED, TASK, design_main, eval_main, train_main


@hookimpl
def did_register_mechanisms(register: Registry) -> None:
    register.add(TASK, MechanismTask(
        description="dynamic affine maximizers on MDPs: sequential sales, task scheduling, gridworld",
        train=train_main, evaluate=eval_main, design=design_main, shipped=SHIPPED))
