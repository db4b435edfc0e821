"""Imitation: a generator first learns to reproduce the task's per-instance optimiser, then trains through the block.

Training through the equilibrium block follows the designer's gradient, which sees
only the local picture. Where the baseline intervention is a strict local optimum
whose better answers lie further out (a contract: every small payment only costs,
while a bonus of the right size is worth much more), a generator trained so never
leaves the baseline. The task's per-instance optimiser
(:attr:`~did_core.instance_format.InstanceFormat.optimiser`, a multi-start search
through the block) does find those answers, one instance at a time. With
``TrainConfig.imitation_contexts = K`` and ``imitation_steps = S``:

1. the optimiser designs for ``K`` contexts of the sampler (seed ``cfg.seed + 1``)
   through the run's exact block, concept and tolerance; its answers are the run's
   file :data:`TARGETS_FILE`, written after every chunk of :data:`CHUNK` contexts, so
   an interrupted run resumes the search where it stopped;
2. the first ``S`` of the run's steps regress the generator on those answers
   (:meth:`~did_core.tasks.DesignObjective.imitation_loss`, batches drawn from the
   run's random stream); the remaining steps train through the block as usual.

A generator may say what it learns from instead, with two methods:
``imitation_targets(context, block, concept, eps) -> Tensor [B, ...]`` (what it
imitates, computed through the exact block in place of the optimiser's answers,
e.g. the value of every member of a family of interventions) and
``imitation_loss(context, targets) -> Tensor [B]``; it then needs no per-instance
optimiser, and receives each size group's rows of the stored targets as they
were computed for the padded contexts.

Padding: interventions are padded at the end of every axis, as contexts are, so a
size group's answers are the stored ones cut to the group's shape.
"""

from __future__ import annotations

import io
import sys

import torch
from torch import Tensor

from did_core.components import Components
from did_core.config import TrainConfig
from did_core.grouping import grouped_members
from did_core.plugins import create
from did_core.runs import Progress, RunDir, RunDirError, atomic_write_bytes
from did_core.scoring import context_to
from did_core.tasks import Context, index_context

__all__ = ["TARGETS_FILE", "CHUNK", "check_imitation", "imitation_contexts", "imitation_targets", "imitation_step"]

#: The run's file of the optimiser's answers ``{"targets": [k, ...], "seed": int, "contexts": K}`` (``k <= K``
#: while building; the contexts drawn depend on both the seed and ``K``).
TARGETS_FILE = "imitation_targets.pt"
#: Contexts designed for per optimiser call (and per write of :data:`TARGETS_FILE`).
CHUNK = 64


def check_imitation(parts: Components, cfg: TrainConfig) -> None:
    """Refuse, in one line, imitation settings that cannot work: one of contexts and steps without the other,
    more imitation steps than steps, or a task without a per-instance optimiser."""
    if (cfg.imitation_contexts > 0) != (cfg.imitation_steps > 0):
        raise ValueError(f"--imitation-contexts {cfg.imitation_contexts} and --imitation-steps "
                         f"{cfg.imitation_steps}: give both (an imitation phase needs answers and steps) or neither")
    if cfg.imitation_steps > cfg.steps:
        raise ValueError(f"--imitation-steps {cfg.imitation_steps} is more than --steps {cfg.steps} (the imitation "
                         f"phase is the first steps of the run)")
    instances = parts.task.instances
    if cfg.imitation_contexts and not _teaches_itself(parts.generator) and (
            instances is None or type(instances).optimiser is None):
        raise ValueError(f"--imitation-contexts {cfg.imitation_contexts}: task {cfg.task} has no per-instance "
                         f"optimiser to imitate")


def _teaches_itself(generator: object) -> bool:
    """Whether the generator defines what it imitates (both ``imitation_targets`` and ``imitation_loss``)."""
    return all(callable(getattr(generator, name, None)) for name in ("imitation_targets", "imitation_loss"))


def imitation_contexts(parts: Components, cfg: TrainConfig) -> Context:
    """The ``cfg.imitation_contexts`` contexts the optimiser designs for (seed ``cfg.seed + 1``), on the CPU."""
    return parts.sampler.sample(cfg.imitation_contexts, torch.Generator().manual_seed(cfg.seed + 1))


def _read(run: RunDir, cfg: TrainConfig) -> Tensor | None:
    """The answers stored so far, ``None`` for none; a file of another seed or count is a ``RunDirError``."""
    path = run.file(TARGETS_FILE)
    if not path.exists():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        targets, seed, count = stored["targets"], int(stored["seed"]), int(stored["contexts"])
    except Exception as exc:  # torch raises many types for damaged or unsafe files
        raise RunDirError(f"{path} cannot be read (damaged, or not this run's imitation answers): "
                          f"{type(exc).__name__}") from None
    if (seed, count) != (cfg.seed + 1, cfg.imitation_contexts) or not isinstance(targets, Tensor) or (
            len(targets) > count):
        raise RunDirError(f"{path} holds answers of another run (seed or count differ); start a new run")
    return targets


def _write(run: RunDir, cfg: TrainConfig, targets: Tensor) -> None:
    buffer = io.BytesIO()
    torch.save({"targets": targets, "seed": cfg.seed + 1, "contexts": cfg.imitation_contexts}, buffer)
    atomic_write_bytes(run.file(TARGETS_FILE), buffer.getvalue())


def imitation_targets(parts: Components, cfg: TrainConfig, run: RunDir, contexts: Context) -> Tensor:
    """The optimiser's answers ``[K, ...]`` for ``contexts`` (float32, on the CPU): read from the run, the missing
    ones designed for (:data:`CHUNK` contexts a call, progress on stderr) and stored after each chunk."""
    done = _read(run, cfg)
    total = cfg.imitation_contexts
    if done is not None and len(done) == total:
        return done
    block = create("blocks", cfg.exact_block)
    instances, generator = parts.task.instances, parts.generator
    progress = Progress(total, 0 if done is None else len(done), label=f"{cfg.task}/imitation answers")
    parts_done = [] if done is None else [done]
    first = 0 if done is None else len(done)
    for start in range(first, total, CHUNK):
        chunk = index_context(contexts, torch.arange(start, min(start + CHUNK, total)))
        chunk = context_to(chunk, parts.device)
        if _teaches_itself(generator):
            answer = generator.imitation_targets(chunk, block, parts.concept, parts.eps)
        else:
            answer = instances.optimise(chunk, block, parts.concept, parts.eps, cfg.imitation_search_steps, 0.05)
        parts_done.append(answer.detach().float().cpu())
        stored = torch.cat(parts_done)
        _write(run, cfg, stored)
        progress.update(len(stored), {})
    progress.close()
    how = ("the generator's own targets" if _teaches_itself(generator)
           else f"{cfg.imitation_search_steps} search steps each")
    print(f"imitation answers: {total} contexts, {how} ({run.file(TARGETS_FILE)})", file=sys.stderr)
    return torch.cat(parts_done)


def imitation_step(parts: Components, contexts: Context, targets: Tensor, batch: int, rng: torch.Generator,
                   max_groups: int, min_saving: int = 0, share: slice | None = None) -> dict[str, float]:
    """One regression step: ``batch`` contexts drawn from ``rng``, this rank's ``share`` of them, run as size groups;
    the loss (``imitation``, the mean of :meth:`~did_core.tasks.DesignObjective.imitation_loss`) back-propagated
    with each group weighted by its share of the batch. Returns the logged scalars."""
    picked = torch.randint(len(targets), (batch,), generator=rng)
    if share is not None:
        picked = picked[share]
    context = context_to(index_context(contexts, picked), parts.device)
    wanted = targets[picked].to(parts.device)
    total = 0.0
    for members, group in grouped_members(parts.sampler, context, max_groups, min_saving):
        target = wanted if members is None else wanted[members.to(parts.device)]
        if _teaches_itself(parts.generator):
            losses = parts.generator.imitation_loss(group, target)
        else:
            x = parts.generator(group)
            target = target[(slice(None), *(slice(0, n) for n in x.shape[1:]))].to(x.dtype)
            losses = parts.objective.imitation_loss(group, x, target)
        loss = losses.sum() / batch
        loss.backward()
        total += float(loss.detach())
    return {"imitation": total, "loss": total}
