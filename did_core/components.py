"""The parts of a run built from its config, shared by training, evaluation and ``did design``.

    sampler(batch, rng) -> context
    generator(context)  -> intervention x
    objective.induce(context, x) -> games, mask
    block(games, mask, eps, concept) -> Equilibrium

Components come from the run's task (``did_register_tasks``) unless the config
names an override registered on its own (``--sampler``, ``--loss``, ``--generator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from did_core import distributed
from did_core.blocks import Equilibrium, EquilibriumBlock
from did_core.config import TrainConfig
from did_core.equilibria import Epsilon
from did_core.plugins import create, registry
from did_core.registry import call_factory
from did_core.tasks import Context, ContextSampler, DesignObjective, Task, component_factory

__all__ = ["Components", "get_task", "build_task_parts", "build_components", "solve_induced", "resolve_device", "context_to"]


@dataclass
class Components:
    """The named parts of a run, built from its config."""

    task: Task
    sampler: ContextSampler
    objective: DesignObjective
    generator: nn.Module
    block: EquilibriumBlock
    eps: Epsilon
    device: torch.device


def get_task(name: str) -> Task:
    """The task registered as ``name``."""
    return registry("tasks").get(name).value


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a clear error.

    In a process group (torchrun) ``cuda`` is each rank's own GPU, ``cuda:LOCAL_RANK``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    world = distributed.current()
    if name.startswith("cuda") and world.size > 1:
        if name != "cuda":
            raise ValueError(f"device {name!r} names one GPU, but {world.size} processes run: give --device cuda "
                             f"(each process uses cuda:LOCAL_RANK)")
        return torch.device("cuda", world.local_rank)
    return torch.device(name)


def build_task_parts(cfg: TrainConfig) -> tuple[Task, ContextSampler, DesignObjective, nn.Module]:
    """The task of ``cfg`` and its sampler, objective and generator (on the CPU), with ``cfg``'s overrides.

    A generator with a method ``bind_tolerance(eps: Epsilon)`` is called with the run's tolerance
    (for a generator that models the followers' answer, as the block will compute it).
    """
    task = get_task(cfg.task)

    def component(kind: str, override: str | None, default: Any, *args: Any, **options: Any) -> Any:
        if override:
            return call_factory(f"{kind[:-1]} {override!r}", component_factory(kind, override), *args, **options)
        return call_factory(f"the {kind[:-1]} of task {cfg.task!r}", default, *args, **options)

    sampler = component("samplers", cfg.sampler, task.sampler, **cfg.sampler_options)
    objective = component("losses", cfg.loss, task.objective, **cfg.loss_options)
    generator = component("generators", cfg.generator, task.generator, sampler, **cfg.generator_options)
    bind = getattr(generator, "bind_tolerance", None)
    if callable(bind):  # a generator that models the followers' answer is told the run's tolerance
        bind(Epsilon(cfg.eps, not cfg.absolute_eps))
    return task, sampler, objective, generator


def build_components(cfg: TrainConfig, block_name: str | None = None) -> Components:
    """Instantiate the sampler, objective, generator and block of ``cfg`` (``block_name`` replaces its block)."""
    device = resolve_device(cfg.device)
    task, sampler, objective, generator = build_task_parts(cfg)
    name = block_name or cfg.block
    block = create("blocks", name, **(cfg.block_options if name == cfg.block else {}))
    registry("blocks").get(cfg.exact_block)  # an unknown evaluation block fails now, not after training
    return Components(task, sampler, objective, generator.to(device), block, Epsilon(cfg.eps, not cfg.absolute_eps),
                      device)


def context_to(context: Context, device: torch.device) -> Context:
    """Move every tensor of a context to ``device``."""
    return {k: v.to(device) for k, v in context.items()}


def solve_induced(parts: Components, block: EquilibriumBlock, context: Context, x: torch.Tensor,
                  concept: str) -> Equilibrium:
    """Induce the games of ``(context, x)`` and solve them with ``block`` in double precision."""
    games, mask = parts.objective.induce(context, x)
    return block(games.double(), mask, concept=concept, eps=parts.eps)
