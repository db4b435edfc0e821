"""Registers the tasks ``commitment`` and ``matrix_design`` and the command ``did stackelberg``."""

from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.tasks import Task, paper_profile, quick_profile
from did_stackelberg.commitment import CommitmentObjective, CommitmentSampler
from did_stackelberg.design_commitment import CommitmentInstances
from did_stackelberg.design_matrix import MatrixDesignInstances
from did_stackelberg.generators import CommitmentGenerator, PaymentGenerator
from did_stackelberg.matrix_design import MatrixDesignObjective, MatrixDesignSampler

COMMITMENT = Task(
    sampler=CommitmentSampler,
    objective=CommitmentObjective,
    generator=CommitmentGenerator,
    description="commit the leader to a mixed strategy that the followers' equilibrium makes worth the most",
    size_axis="actions",
    # measured (README): 600 x 256 games reach 0.951 of the strong Stackelberg value, 600 x 128 0.949
    train_profiles={"quick": quick_profile(steps=600, batch_size=256), "paper": paper_profile(batch_size=256)},
    polish_budget=400,
    instances=CommitmentInstances(),
)

MATRIX_DESIGN = Task(
    sampler=MatrixDesignSampler,
    objective=MatrixDesignObjective,
    generator=PaymentGenerator,
    description="promise payments per cell so that the followers' equilibrium reaches a goal at little cost",
    size_axis="actions",
    train_profiles={"quick": quick_profile(), "paper": paper_profile()},
    polish_budget=1000,
    instances=MatrixDesignInstances(),
)


def _command(argv: list[str]) -> int:
    """commitments against the strong Stackelberg value on held-out games"""
    from did_stackelberg.report import main

    return main(argv)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add("commitment", COMMITMENT)
    register.add("matrix_design", MATRIX_DESIGN)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("stackelberg", _command)
