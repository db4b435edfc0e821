"""The checks of a registered design task's components (:func:`task_checks`; its files: :mod:`.commands`).

Every check builds the task as ``did train --task NAME`` does at the quick profile (sampler, objective and
generator with the profile's options) and solves its games with the preferred installed exact block under the
default concept, at the kit's tolerance.

* **components**: the sampler is reproducible for a seed and batch-first, ``size_of`` is ``[B]``, and the sampler,
  objective and generator each refuse an unknown option with one ``ValueError`` line;
* **induced games**: ``induce(context, x)`` gives valid games ``[B, N, A_1..A_N]`` and masks (did_core.games
  ``check_games``) for the generator's and the baseline's intervention, which have the same shape;
* **loss and gradients**: the loss is a finite scalar whose gradient reaches the generator's weights, ``value``
  is ``[B]``;
* **slicing**: a sub-batch (``index_context``) goes through the same path;
* **extents**: a sampler that declares ``extents`` and ``padded_axes`` pads consistently, and cutting a context
  to its extents (what ``did train`` does to size groups) changes neither the generator's answer, nor the
  induced games, nor the value under the exact block;
* **bound**: ``bound(context)`` is ``[B]`` and neither the baseline nor the generator's intervention beats it
  under the exact block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from did_core.blocks import EquilibriumBlock
from did_core.components import build_task_parts
from did_core.concepts import Concept
from did_core.config import resolve_train_config
from did_core.games import check_games
from did_core.plugin_checks.checks import Check, CheckFailed, NotApplicable, expect, one_line
from did_core.plugin_checks.games import EPS
from did_core.plugins import create, get_concept, get_task
from did_core.registry import call_factory
from did_core.scoring import Scorer
from did_core.tasks import Context, ContextSampler, DesignObjective, context_size, index_context

__all__ = ["task_checks", "TaskParts", "components", "induced_games", "loss_and_gradients", "slicing", "extents",
           "bound", "CLOSE"]

#: How close a generator's answers (float32) and the values they lead to must be, relative and absolute: about
#: a thousand float32 roundings, since padding reorders sums and a generator that iterates (an ascent, a solver
#: stopped at the dtype's resolution) carries their differences on; a padding bug moves answers far more.
CLOSE = 1e-4


@dataclass
class TaskParts:
    """A task built as ``did train --task NAME`` builds it at the quick profile, with its exact block and concept,
    and a batch of ``batch`` contexts drawn with seed 0."""

    sampler: ContextSampler
    objective: DesignObjective
    generator: nn.Module
    block: EquilibriumBlock
    concept: Concept
    context: Context

    @classmethod
    def of(cls, name: str, batch: int = 4) -> "TaskParts":
        config = resolve_train_config({"task": name})
        _, sampler, objective, generator = build_task_parts(config)
        context = sampler.sample(batch, torch.Generator().manual_seed(0))
        return cls(sampler, objective, generator, create("blocks", config.exact_block),
                   get_concept(config.concept, config.concept_options), context)

    def values(self, context: Context, x: Tensor) -> Tensor:
        """The objective's value ``[B]`` of ``x`` under the exact block, float64."""
        return Scorer(self.objective, self.block, self.concept, EPS).values(context, x.detach())[0]


def _refuses_unknown_option(label: str, factory: object, *args: object) -> None:
    try:
        call_factory(label, factory, *args, no_such_option=1)
    except ValueError as error:
        expect("\n" not in str(error), f"{label}: an unknown option is refused in more than one line")
        return
    raise CheckFailed(f"{label}: the unknown option no_such_option=1 is accepted")


def components(name: str) -> None:
    """See the module docstring, *components*."""
    parts, task = TaskParts.of(name), get_task(name)
    again = parts.sampler.sample(4, torch.Generator().manual_seed(0))
    expect(set(again) == set(parts.context) and all(torch.equal(parts.context[k], again[k]) for k in again),
           "the sampler draws different contexts for the same seed")
    wrong = [k for k, v in parts.context.items() if v.shape[:1] != (4,)]
    expect(not wrong, f"context tensors {', '.join(wrong)} are not batch-first (a batch of 4)")
    expect(tuple(parts.sampler.size_of(parts.context).shape) == (4,), "size_of(context) is not [B]")
    _refuses_unknown_option("the sampler", task.sampler)
    _refuses_unknown_option("the objective", task.objective)
    _refuses_unknown_option("the generator", task.generator, parts.sampler)


def induced_games(name: str) -> None:
    """See the module docstring, *induced games*."""
    parts = TaskParts.of(name)
    x, baseline = parts.generator(parts.context), parts.objective.baseline_intervention(parts.context)
    expect(x.shape == baseline.shape, f"the generator's intervention has shape {list(x.shape)}, the baseline's "
           f"{list(baseline.shape)}")
    for label, intervention in (("the generator's", x), ("the baseline", baseline)):
        games, mask = parts.objective.induce(parts.context, intervention)
        try:
            check_games(games.double(), mask)
        except ValueError as error:
            raise CheckFailed(f"{label} intervention induces invalid games: {one_line(error)}") from None
        expect(games.shape[0] == 4, f"{label} intervention induces {games.shape[0]} games for 4 contexts")


def loss_and_gradients(name: str) -> None:
    """See the module docstring, *loss and gradients*."""
    parts = TaskParts.of(name)
    x = parts.generator(parts.context)
    games, mask = parts.objective.induce(parts.context, x)
    eq = parts.block(games.double(), mask, concept=parts.concept, eps=EPS)
    loss, scalars = parts.objective.loss(parts.context, x, eq, 0.5)
    expect(loss.dim() == 0 and bool(torch.isfinite(loss)), f"the loss is not a finite scalar: {loss}")
    expect(all(isinstance(v, (int, float)) for v in scalars.values()), "the logged scalars are not numbers")
    loss.backward()
    expect(any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in parts.generator.parameters()),
           "no gradient reaches the generator's weights")
    expect(tuple(parts.objective.value(parts.context, x, eq).shape) == (4,), "value(context, x, eq) is not [B]")


def slicing(name: str) -> None:
    """See the module docstring, *slicing*."""
    parts = TaskParts.of(name)
    sub = index_context(parts.context, slice(1, 3))
    expect(context_size(sub) == 2, "index_context(context, slice(1, 3)) does not hold 2 contexts")
    expect(tuple(parts.values(sub, parts.generator(sub)).shape) == (2,), "a sub-batch's value is not [2]")


def _leading(values: Tensor, like: Tensor) -> Tensor:
    """``values`` cut to the leading ``like.shape`` on every axis."""
    return values[tuple(slice(0, n) for n in like.shape)]


def extents(name: str) -> None:
    """See the module docstring, *extents*."""
    parts = TaskParts.of(name)
    sampler, context = parts.sampler, parts.context
    lengths = sampler.extents(context)
    if lengths is None:
        raise NotApplicable("the sampler declares no extents (its batches are not cut into size groups)")
    expect(lengths.dim() == 2 and lengths.shape[0] == 4, f"extents(context) has shape {list(lengths.shape)}, not "
           f"[B, K]")
    for key, axes in sampler.padded_axes().items():
        expect(key in context, f"padded_axes names {key!r}, which the context does not hold")
        for axis, dims in axes.items():
            longest = int(lengths[:, list(dims)].max())
            expect(context[key].shape[axis] >= longest, f"axis {axis} of {key!r} is shorter than extent {longest}")
    with torch.no_grad():
        x = parts.generator(context)
    games = parts.objective.induce(context, x)[0]
    values = parts.values(context, x)
    for b in range(4):
        cut = sampler.crop(index_context(context, [b]), lengths[b].tolist())
        with torch.no_grad():
            x_cut = parts.generator(cut)
        expect(torch.allclose(x_cut, _leading(x[b:b + 1], x_cut), rtol=CLOSE, atol=CLOSE),
               f"context {b} cut to its extents gets another intervention from the generator")
        games_cut = parts.objective.induce(cut, x_cut)[0]
        expect(torch.allclose(games_cut, _leading(games[b:b + 1], games_cut), rtol=CLOSE, atol=CLOSE),
               f"context {b} cut to its extents induces other games")
        value = float(parts.values(cut, x_cut)[0])
        expect(abs(value - float(values[b])) <= CLOSE * max(1.0, abs(value)),
               f"context {b} cut to its extents has value {value:.6g}, not {float(values[b]):.6g}")


def bound(name: str) -> None:
    """See the module docstring, *bound*."""
    parts = TaskParts.of(name)
    limit = parts.objective.bound(parts.context)
    if limit is None:
        raise NotApplicable("the objective declares no bound")
    expect(tuple(limit.shape) == (4,), f"bound(context) has shape {list(limit.shape)}, not [B]")
    limit = limit.detach().double()
    with torch.no_grad():
        interventions = {"the baseline": parts.objective.baseline_intervention(parts.context),
                         "the generator's intervention": parts.generator(parts.context)}
    for label, x in interventions.items():
        values = parts.values(parts.context, x)
        beaten = parts.objective.improved(values, limit) & ((values - limit).abs() > 1e-9 * limit.abs().clamp_min(1))
        if bool(beaten.any()):
            raise CheckFailed(f"{label} beats the bound: value {float(values[beaten][0]):.6g} against bound "
                              f"{float(limit[beaten][0]):.6g}")


def task_checks(name: str) -> list[Check]:
    """The checks of the components of the registered task ``name``."""
    subject = f"task {name}"
    return [
        Check(subject, "components: reproducible sampler, options in one line", partial(components, name)),
        Check(subject, "induced games and masks are valid", partial(induced_games, name)),
        Check(subject, "loss is a finite scalar with gradients into the generator", partial(loss_and_gradients, name)),
        Check(subject, "contexts slice", partial(slicing, name)),
        Check(subject, "cutting to extents changes no real value", partial(extents, name)),
        Check(subject, "bound never beaten", partial(bound, name)),
    ]
