"""One generic trainer for mechanism generators (docs/mathematics.md, section 6, "One training step").

    sampler(batch, rng) -> context
    generator(context)  -> intervention x
    objective.induce(context, x) -> games, mask
    block(games, mask, eps, concept) -> Equilibrium
    objective.loss(context, x, eq, progress) -> scalar; backward into the generator only

The trainer never knows which task or block it runs: everything is looked up
by name in the plugin registries (:mod:`did_core.components`).

Under torchrun the same function trains one generator data-parallel over the
ranks (:mod:`did_core.distributed`): every rank draws the whole batch from the
one seeded stream and trains on its slice, gradients are summed over the ranks,
and only rank 0 writes the run directory.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from torch import Tensor

from did_core import distributed
from did_core.blocks import Equilibrium, SolveSize, SolveTooLarge
from did_core.components import Components, build_components
from did_core.config import TrainConfig, generic_default
from did_core.distributed import World
from did_core.equilibria import constraints
from did_core.equilibrium_range import RangeError, linear_form, worst_case_value
from did_core.evaluate import check_contexts_memory, check_held_out, evaluate_generator
from did_core.files import shown
from did_core.grouping import grouped
from did_core.imitation import check_imitation, imitation_contexts, imitation_step, imitation_targets
from did_core.loop import LoopSettings, Schedule, StepFn, TrainingLoop
from did_core.plugins import create
from did_core.results import BlockResult
from did_core.runs import RunDir, RunDirError
from did_core.scoring import context_to
from did_core.tasks import Context, DesignObjective, index_context

__all__ = ["training_step", "train", "check_components", "check_losing", "check_worst_case", "check_sizes",
           "check_resume", "rank_step", "loop_settings", "RESUME_FREE"]


def training_step(parts: Components, context: Context, progress: float, max_groups: int,
                  min_saving: int = 0, share: float = 1.0, worst_case_weight: float = 0.0,
                  losing_weight: float = 1.0) -> dict[str, float]:
    """Loss and backward pass of one batch, run as size groups; returns the logged scalars.

    Each group (:func:`did_core.grouping.grouped`) goes through generator, induced
    game, block and loss, and back-propagates its loss weighted by its share of
    the batch, so the gradient is the padded batch's. Scalars (the objective's,
    ``loss`` and the mean ``violation``) are the same weighted means.

    ``share`` scales both: a rank that holds ``B_r`` of a global batch of ``B``
    contexts passes ``B_r / B``, so that the sums over the ranks are the global
    batch's gradient and means.

    ``worst_case_weight`` ``w > 0`` adds ``w`` times the group's mean worst-case value
    (:func:`~did_core.equilibrium_range.worst_case_value`; minus it for an objective
    maximised) to the loss and logs that mean as ``worst_case``.

    ``losing_weight`` ``w < 1`` weighs the contexts where the baseline intervention's loss
    (:meth:`~did_core.tasks.DesignObjective.context_loss`, its equilibrium solved without gradient) is below the
    generator's: such a context contributes ``l_0 + w (l_x - l_0)``, so ``w = 0`` is the guarded loss, the better
    of the two, and those contexts stop pulling the generator towards the baseline. The share of such contexts
    is logged as ``losing``.
    """
    totals: dict[str, float] = {}
    for group_weight, group in grouped(parts.sampler, context, max_groups, min_saving):
        weight = share * group_weight
        x = parts.generator(group)
        eq = parts.scorer().solve(group, x)
        if losing_weight < 1:
            loss, scalars = _weigh_losing(parts, group, x, eq, progress, losing_weight)
        else:
            loss, scalars = parts.objective.loss(group, x, eq, progress)
        if worst_case_weight:
            worst = worst_case_value(parts.objective, group, x, parts.concept, parts.eps).mean()
            loss = loss + worst_case_weight * (worst if parts.objective.minimize else -worst)
            scalars["worst_case"] = float(worst.detach())
        (loss * weight).backward()
        scalars.update(loss=float(loss.detach()), violation=float(eq.info["violation"].mean()))
        for name, value in scalars.items():
            totals[name] = totals.get(name, 0.0) + weight * float(value)
    return totals


def _weigh_losing(parts: Components, context: Context, x: Tensor, eq: Equilibrium, progress: float,
                  weight: float) -> tuple[Tensor, dict[str, float]]:
    """The mean loss with the contexts the baseline wins weighted by ``weight`` (see :func:`training_step`)."""
    objective = parts.objective
    losses, scalars = objective.context_loss(context, x, eq, progress)  # check_losing: not None
    with torch.no_grad():
        baseline = objective.baseline_intervention(context)
        base = objective.context_loss(context, baseline, parts.scorer().solve(context, baseline), progress)[0]
    losing = losses.detach() > base
    weighted = torch.where(losing, base + weight * (losses - base), losses)
    return weighted.mean(), {**scalars, "losing": float(losing.double().mean())}


RESUME_FREE = ("threads", "log_every", "checkpoint_every", "eval_contexts", "eval_seed", "exact_block", "world_size")
"""Config fields a resumed run may change: they do not change what the remaining steps compute (the
number of processes neither: the batch is the same global batch on any number of ranks)."""


def check_components(parts: Components, cfg: TrainConfig) -> None:
    """One forward pass on two contexts, so parts that do not fit together fail before anything is written."""
    try:
        context = context_to(parts.sampler.sample(2, torch.Generator().manual_seed(0)), parts.device)
        with torch.no_grad():
            x = parts.generator(context)
            eq = parts.scorer().solve(context, x)
            parts.objective.loss(context, x, eq, 0.0)
            parts.objective.value(context, x, eq)
    except SolveTooLarge:
        raise  # the parts fit; their games are too large for the block
    except Exception as exc:  # any failure here means the named parts do not work together
        raise ValueError(f"sampler {cfg.sampler_name!r}, loss {cfg.loss_name!r}, generator "
                         f"{cfg.generator_name!r} and block {cfg.block!r} do not work together: "
                         f"{type(exc).__name__}: {exc}") from None


def check_losing(parts: Components, cfg: TrainConfig) -> None:
    """Refuse a ``losing_weight`` below 1 for an objective without a per-context loss (it has no contexts to weigh)."""
    if cfg.losing_weight < 1 and type(parts.objective).context_loss is DesignObjective.context_loss:
        raise ValueError(f"--losing-weight {cfg.losing_weight}: objective {type(parts.objective).__name__} has no "
                         "per-context loss (DesignObjective.context_loss), so no context can be weighed")


def check_worst_case(parts: Components, cfg: TrainConfig) -> None:
    """Refuse a positive ``worst_case_weight`` for an objective whose value is not linear in the joint (it has no
    worst case over the equilibrium set; :func:`~did_core.equilibrium_range.linear_form`)."""
    if not cfg.worst_case_weight:
        return
    context = context_to(parts.sampler.sample(1, torch.Generator().manual_seed(0)), parts.device)
    with torch.no_grad():
        x = parts.generator(context)
    try:
        linear_form(parts.objective, context, x)
    except RangeError as exc:
        raise ValueError(f"--worst-case-weight {cfg.worst_case_weight}: {exc}") from None


def check_sizes(parts: Components, cfg: TrainConfig) -> None:
    """Refuse, before anything is written, a run whose batches a block would refuse as too large (its size guard),
    or whose batch of contexts alone would take over half this machine's memory.

    The games of one batch of ``cfg.batch_size`` contexts, padded as the sampler pads them
    (size groups pad less), are checked against the training block with a graph to
    backpropagate and against the exact block on a batch of the same size without one.
    """
    check_contexts_memory(parts, cfg.batch_size, "contexts of one batch", "--batch-size")  # before drawing them
    context = context_to(parts.sampler.sample(cfg.batch_size, torch.Generator().manual_seed(0)), parts.device)
    with torch.no_grad():
        games, mask = parts.objective.induce(context, parts.generator(context))
        size = SolveSize.of(constraints(games.double(), mask, parts.concept, parts.eps))
    parts.block.check_size(replace(size, grad=True))
    (parts.block if cfg.exact_block == cfg.block else create("blocks", cfg.exact_block)).check_size(size)


def check_resume(run: RunDir, cfg: TrainConfig) -> None:
    """Refuse to resume ``run`` with a config that changes what it trains (exact resumption needs the same).

    The reference is the config stored in the last checkpoint (else ``config.yaml``);
    only the fields in :data:`RESUME_FREE` may differ.
    """
    if not run.holds_run():
        raise RunDirError(f"cannot resume: {run.path} holds no run (no config.yaml or checkpoint)")
    state = run.load_checkpoint()
    stored = json.loads(state["config"]) if state and "config" in state else yaml.safe_load(
        run.file(RunDir.CONFIG).read_text())
    asked = cfg.model_dump()
    # A field newer than the run (absent from its stored config) had its generic default there.
    changed = [k for k in asked if k not in RESUME_FREE and stored.get(k, generic_default(k)) != asked[k]]
    if changed:
        was = ", ".join(f"{k}={shown(stored.get(k))}" for k in changed)
        now = ", ".join(f"{k}={shown(asked[k])}" for k in changed)
        raise RunDirError(f"cannot resume {run.path}: it was trained with {was}, this command asks {now} "
                          f"(flags or an edited config.yaml); start a new run to train with other settings")


def train(cfg: TrainConfig, run_path: Path, resume: bool = False) -> dict[str, BlockResult]:
    """Train the generator of ``cfg`` into ``run_path``; evaluate on held-out contexts; return the evaluation.

    Everything is validated before the run directory is touched: names and options
    (building the components), that they work together (:func:`check_components`),
    that a batch fits the blocks (:func:`check_sizes`) and the held-out evaluation this
    machine (:func:`did_core.evaluate.check_held_out`), and that the directory is free (a
    new run) or holds this run with the same config (:func:`check_resume`). The directory
    is locked while the run lasts.

    In a process group (torchrun) every rank calls this with the same arguments:
    each builds and checks the components, rank 0 alone checks, locks and writes
    the directory, and the config records the number of ranks (``world_size``).
    """
    world = distributed.current()
    cfg = cfg.model_copy(update={"world_size": world.size})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    def build() -> Components:
        if cfg.batch_size < world.size:
            raise ValueError(f"--batch-size {cfg.batch_size} is smaller than the number of processes ({world.size}): "
                             f"every process needs at least one context of each batch")
        parts = build_components(cfg)
        check_components(parts, cfg)
        check_worst_case(parts, cfg)
        check_losing(parts, cfg)
        check_imitation(parts, cfg)
        check_sizes(parts, cfg)
        check_held_out(cfg, parts, _eval_blocks(cfg), cfg.eval_contexts, "--eval-contexts", world=world)
        return parts

    parts = distributed.together(world, build)
    run = RunDir(run_path)
    check = (lambda: check_resume(run, cfg)) if resume else run.check_new

    def claim() -> None:
        check()
        run.acquire()
        try:
            check()  # again under the lock: another process may have written in between
        except BaseException:
            run.release()
            raise

    distributed.on_main(world, claim)
    try:
        return _train(cfg, parts, run, resume, world)
    finally:
        if world.is_main:
            run.release()


def _eval_blocks(cfg: TrainConfig) -> list[str]:
    """The blocks of the held-out evaluation at the end of training: the training block and the exact block."""
    return list(dict.fromkeys([cfg.block, cfg.exact_block]))


def rank_step(cfg: TrainConfig, parts: Components, rng: torch.Generator, world: World,
              imitation: tuple[Context, Tensor] | None = None) -> StepFn:
    """The trainer's ``step_fn`` on this rank: the whole batch from ``rng``, then this rank's slice of it.

    Every rank draws all ``cfg.batch_size`` contexts from the one seeded stream (so the
    contexts of a step do not depend on the number of ranks), keeps its contiguous share
    (:func:`did_core.distributed.share`) and weights its loss by that share. The first
    ``cfg.imitation_steps`` steps regress on ``imitation``, the optimiser's contexts and
    answers (:func:`did_core.imitation.imitation_step`).
    """
    mine = distributed.share(cfg.batch_size, world)
    share = (mine.stop - mine.start) / cfg.batch_size

    def step_fn(step: int, progress: float) -> dict[str, float]:
        if step < cfg.imitation_steps and imitation is not None:
            return imitation_step(parts, *imitation, cfg.batch_size, rng, cfg.size_groups, cfg.group_min_saving,
                                  mine)
        context = index_context(parts.sampler.sample(cfg.batch_size, rng), mine)
        return training_step(parts, context_to(context, parts.device), progress, cfg.size_groups,
                             cfg.group_min_saving, share, cfg.worst_case_weight, cfg.losing_weight)

    return step_fn


def loop_settings(cfg: TrainConfig) -> LoopSettings:
    """The optimisation loop of ``cfg`` (schedule, clipping, logging and checkpoint periods)."""
    return LoopSettings(
        steps=cfg.steps,
        schedule=Schedule(cfg.lr, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.final_lr_fraction),
        grad_clip=cfg.grad_clip,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        label=f"{cfg.task}/{cfg.block}",
        extra_state={"config": json.dumps(cfg.model_dump())},
    )


def _train(cfg: TrainConfig, parts: Components, run: RunDir, resume: bool, world: World
           ) -> dict[str, BlockResult]:
    # A new run's config, or a resumed run's with its changed evaluation-only fields (rank 0 writes it; a
    # refused write, e.g. on a full disk, stops every rank).
    distributed.on_main(world, lambda: run.write_yaml(RunDir.CONFIG, cfg.model_dump()))
    if world.is_main:
        print(f"run directory: {run.path}" + (f" ({world.size} processes)" if world.size > 1 else ""),
              file=sys.stderr)
    imitation = None
    if cfg.imitation_steps:
        contexts = imitation_contexts(parts, cfg)
        imitation = contexts, distributed.on_main(world, lambda: imitation_targets(parts, cfg, run, contexts))
    rng = torch.Generator().manual_seed(cfg.seed)
    TrainingLoop(run, parts.generator, rank_step(cfg, parts, rng, world, imitation), loop_settings(cfg), rng,
                 world=world).run(resume=resume)
    result = evaluate_generator(cfg, parts, _eval_blocks(cfg), contexts=cfg.eval_contexts, seed=cfg.eval_seed,
                                world=world)
    if world.is_main:
        run.write_json("eval.json", {name: block.as_dict() for name, block in result.items()})
    return result
