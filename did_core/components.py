"""The parts of a run built from its config, shared by training, evaluation and ``did design``.

    sampler(batch, rng) -> context
    generator(context)  -> intervention x
    objective.induce(context, x) -> games, mask
    block(games, mask, eps, concept) -> Equilibrium

Components come from the run's task (``did_register_tasks``) unless the config
names an override registered on its own (``--sampler``, ``--loss``, ``--generator``).
The config's names (task, components, block, concept) become objects here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from did_core import distributed
from did_core.blocks import EquilibriumBlock
from did_core.concepts import Concept
from did_core.config import TrainConfig, load_yaml, resolve_train_config
from did_core.equilibria import Epsilon
from did_core.files import shown
from did_core.plugins import component_factory, create, get_concept, get_task, registry
from did_core.registry import call_factory
from did_core.runs import RunDir
from did_core.scoring import Scorer
from did_core.tasks import ContextSampler, DesignObjective, Task

__all__ = ["Components", "build_task_parts", "build_components", "read_trained", "load_trained", "load_generator",
           "resolve_device"]


@dataclass
class Components:
    """The named parts of a run, built from its config."""

    task: Task
    sampler: ContextSampler
    objective: DesignObjective
    generator: nn.Module
    block: EquilibriumBlock
    concept: Concept
    eps: Epsilon
    device: torch.device

    def scorer(self, block: EquilibriumBlock | None = None) -> Scorer:
        """Scoring of this run's interventions under ``block`` (default: the run's own block)."""
        return Scorer(self.objective, block or self.block, self.concept, self.eps, self.device)


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
    (for a generator that models the followers' answer, as the block will compute it); one with a method
    ``bind_exact(block: EquilibriumBlock, concept: Concept, eps: Epsilon)`` with the run's exact block,
    concept and tolerance (for a generator that checks a few proposals under the exact block and answers
    with the best, so its answer is a design through that block).
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
    exact = getattr(generator, "bind_exact", None)
    if callable(exact):  # a generator that checks its proposals under the exact block
        exact(create("blocks", cfg.exact_block), get_concept(cfg.concept, cfg.concept_options),
              Epsilon(cfg.eps, not cfg.absolute_eps))
    return task, sampler, objective, generator


def build_components(cfg: TrainConfig, block_name: str | None = None) -> Components:
    """Instantiate the sampler, objective, generator and block of ``cfg`` (``block_name`` replaces its block)."""
    device = resolve_device(cfg.device)
    task, sampler, objective, generator = build_task_parts(cfg)
    name = block_name or cfg.block
    block = create("blocks", name, **(cfg.block_options if name == cfg.block else {}))
    registry("blocks").get(cfg.exact_block)  # an unknown evaluation block fails now, not after training
    return Components(task, sampler, objective, generator.to(device), block,
                      get_concept(cfg.concept, cfg.concept_options), Epsilon(cfg.eps, not cfg.absolute_eps), device)


def read_trained(folder: Path, task: str | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """The resolved config and the checkpoint of a run directory or a shipped generator's folder (the same
    layout), which is only read; a folder that is neither, a run of another task than ``task`` (when given) or
    one without a checkpoint is a one-line ``ValueError``."""
    run = RunDir(Path(folder))
    if not run.file("config.yaml").is_file():
        raise ValueError(f"{folder} is not a run directory (no config.yaml)")
    raw = load_yaml(run.file("config.yaml"))
    if task is not None and raw.get("task") != task:
        raise ValueError(f"{folder} is a run of task {shown(raw.get('task'))}, not {task!r}")
    cfg = resolve_train_config({}, raw)
    state = run.load_checkpoint()
    if state is None:
        raise ValueError(f"{folder} has no checkpoint to load")
    return cfg, state


def load_trained(folder: Path) -> tuple[TrainConfig, Components, dict[str, Any]]:
    """The config, the components (the generator's weights loaded, weights only) and the checkpoint of a run
    directory or a shipped generator's folder (:func:`read_trained`)."""
    cfg, state = read_trained(folder)
    parts = build_components(cfg)
    RunDir(Path(folder)).load_model(parts.generator, state)
    return cfg, parts, state


def load_generator(folder: Path, task: str) -> tuple[TrainConfig, DesignObjective, nn.Module]:
    """The config, objective and trained generator (in eval mode) of a run of ``task`` or a shipped generator's
    folder (:func:`read_trained`), without building a block."""
    cfg, state = read_trained(folder, task)
    _, _, objective, generator = build_task_parts(cfg)
    RunDir(Path(folder)).load_model(generator, state)
    return cfg, objective, generator.eval()
