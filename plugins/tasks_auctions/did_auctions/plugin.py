"""Registers the mechanism tasks ``menu`` (one bidder, the taxation principle) and ``ama`` (affine-maximizer
auctions) with DID."""

from did_core.hookspecs import hookimpl
from did_core.mechanism_task import MechanismTask
from did_core.registry import Registry
from did_auctions import ama_task, menu_task


@hookimpl
def did_register_mechanisms(register: Registry) -> None:
    register.add(menu_task.TASK, MechanismTask(
        description="a menu for one bidder, trained through its eps-max-entropy choice; the LP reference",
        train=menu_task.train, evaluate=menu_task.evaluate, design=menu_task.design, shipped=menu_task.SHIPPED))
    register.add(ama_task.TASK, MechanismTask(
        description="an affine-maximizer auction for several bidders, trained through the softmax relaxation",
        train=ama_task.train, evaluate=ama_task.evaluate, design=ama_task.design, shipped=ama_task.SHIPPED))
