"""The task interface: context samplers, designer objectives, generators and the task that ties them.

A :class:`Task` (registered through ``did_register_tasks``) names:

* a sampler: a ``ContextSampler`` drawing problem instances. A context is a
  ``dict[str, Tensor]`` whose every tensor has the batch as its leading axis (so
  contexts slice and concatenate generically);
* a designer objective: a ``DesignObjective`` that induces the game from a context
  and an intervention, and scores the equilibrium (training loss, evaluation
  value, naive baseline);
* a default generator: a factory ``(sampler, **options) -> nn.Module`` mapping a
  context to an intervention;
* the trainer's settings per profile (the seed paper's, :data:`PAPER_TRAINING`, and a
  short run's, :data:`QUICK_TRAINING`, but what the task states otherwise), the local
  polish budget, the name of the size axis of its reports, and how ``did design`` reads
  one instance.

Every component declares its options as a pydantic model ``Options`` (unknown or
invalid fields are rejected with a clear message) and may declare ``PROFILES``:
option overrides per profile name (``"quick"``, ``"paper"``). Components
registered on their own (``did_register_samplers``, ``_losses``,
``_generators``) replace a task's with ``--sampler``, ``--loss``, ``--generator``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.instance_format import InstanceFormat, NamedContext, numbered
from did_core.options import Options, options_error, validate_options

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "Task",
    "InstanceFormat",
    "NamedContext",
    "numbered",
    "Context",
    "Options",
    "Configurable",
    "ContextSampler",
    "DesignObjective",
    "index_context",
    "context_size",
    "options_error",
    "linear_ramp",
    "RampedPenalty",
    "PAPER_TRAINING",
    "QUICK_TRAINING",
    "paper_profile",
    "quick_profile",
]

Context = dict[str, Tensor]


class Configurable:
    """Mixin: ``__init__(**options)`` validates ``options`` against ``Options`` (:mod:`did_core.options`)."""

    Options: ClassVar[type[Options]] = Options
    #: profile name -> option overrides.
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(self.Options, type(self).__name__, options)


class ContextSampler(Configurable, ABC):
    """Draws batches of contexts ``c ~ P(c)``."""

    @abstractmethod
    def sample(self, batch: int, generator: torch.Generator) -> Context:
        """A batch of ``batch`` contexts drawn with ``generator`` (reproducible for a seed)."""

    def size_of(self, context: Context) -> Tensor:
        """A size label per context ``[B]`` (e.g. its action count) for per-size reports; default all 0."""
        return torch.zeros(context_size(context), dtype=torch.long)

    def extents(self, context: Context) -> Tensor | None:
        """The real length of every padded dimension per context ``[B, K]``, or ``None`` (default).

        A sampler that returns extents (e.g. each player's action count) and
        declares :meth:`padded_axes` lets the trainer run a batch as size groups,
        each cropped to its own largest size (:mod:`did_core.grouping`).
        """
        return None

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        """Which axes of each context tensor are padded: ``{key: {axis: dims}}``.

        Axis ``axis`` of ``context[key]`` is cropped to the largest group extent among
        the dimensions ``dims`` (indices into :meth:`extents`' ``K``); e.g. an action
        mask ``[B, N, A_max]`` names every player's dimension for axis 2.
        """
        return {}

    def crop(self, context: Context, lengths: Sequence[int]) -> Context:
        """The contexts cut to ``lengths`` (one per dimension of :meth:`extents`) on every padded axis.

        Only padding may be cut: ``lengths`` must be at least every context's extents.
        """
        out = dict(context)
        for key, axes in self.padded_axes().items():
            index = [slice(None)] * context[key].dim()
            for axis, dims in axes.items():
                index[axis] = slice(0, max(lengths[d] for d in dims))
            out[key] = context[key][tuple(index)]
        return out

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """Payoff-shaped generator input ``([B, C, N, A_1..A_N], mask [B, N, A_max])``.

        Optional: samplers that implement it can use the core ``p2p`` generator.
        """
        raise NotImplementedError(f"{type(self).__name__} provides no payoff-shaped features")


class DesignObjective(Configurable, ABC):
    """What the designer controls and wants: induced game, loss, evaluation value and baseline.

    ``value`` is the designer's raw outcome per context (e.g. a KL divergence, a
    utility, a makespan); ``minimize`` says which way is better. The evaluation
    metric is ``value`` itself when ``report_change`` is false, else the change
    ``value(x) - value(baseline)``.
    """

    minimize: ClassVar[bool] = True
    report_change: ClassVar[bool] = False
    metric_name: ClassVar[str] = "value"

    @abstractmethod
    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """The induced games ``[B, N, A_1..A_N]`` and mask ``[B, N, A_max]``."""

    @abstractmethod
    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        """Scalar training loss and named scalars to log; ``progress`` in ``[0, 1]`` drives ramps."""

    def context_loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
                     ) -> tuple[Tensor, dict[str, float]] | None:
        """The training loss per context ``[B]`` (its mean is :meth:`loss`) and the scalars to log, or ``None``
        (default) when the loss is not a mean over contexts.

        With it, training can weigh the contexts where the baseline intervention beats the generator's
        (``TrainConfig.losing_weight``): the guarded loss, per context the better of the two, is weight 0.
        """
        return None

    @abstractmethod
    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        """The designer's outcome per context ``[B]``."""

    @abstractmethod
    def baseline_intervention(self, context: Context) -> Tensor:
        """The naive intervention (e.g. no contract, no tax, a constant game), same shape as a generator's output."""

    def intervention_mask(self, context: Context) -> Tensor | None:
        """Which entries of an intervention are real (for the local polish); ``None``: all."""
        return None

    def imitation_loss(self, context: Context, intervention: Tensor, target: Tensor) -> Tensor:
        """How far ``intervention`` is from ``target`` (a per-instance optimiser's answer, the same shape), per
        context ``[B]``: the loss of the imitation phase of training (:mod:`did_core.imitation`).

        Default: the mean squared difference over the real entries (:meth:`intervention_mask`). A task whose
        interventions have a natural unit, or differences that change nothing, says so by overriding it.
        """
        diff = (intervention - target.to(intervention.dtype)) ** 2
        mask = self.intervention_mask(context)
        real = torch.ones_like(diff) if mask is None else mask.expand_as(diff).to(diff.dtype)
        return (diff * real).flatten(1).sum(dim=1) / real.flatten(1).sum(dim=1).clamp_min(1)

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor] | None:
        """:meth:`value` as a linear function of the joint, or ``None`` (default) when it is not one.

        **Returns:** ``(c, const)``, ``c [B, A_1..A_N]`` in the induced game's joint shape and
        ``const [B]``, such that ``value(context, intervention, eq) == (c * eq.sigma).flatten(1).sum(1) + const``
        for every joint ``eq.sigma`` (``c`` may be anything on padded joint actions). With it, the value's worst
        and best end over the whole eps-equilibrium set are linear programs
        (:mod:`did_core.equilibrium_range`, docs/mathematics.md, section 8).
        """
        return None

    def bound(self, context: Context) -> Tensor | None:
        """A value per context ``[B]`` that no intervention can beat, or ``None`` (default) when the task knows none.

        Typically the designer's best outcome over every joint action, as if the
        players obeyed and intervening were free. Evaluation reports it beside the
        generator, so a table shows the headroom left and which targets no mechanism reaches.
        """
        return None

    def extra_plots(self, sampler: ContextSampler, generator: "nn.Module",
                    solve: Callable[[Context, Tensor], Equilibrium], folder: Path) -> list[Path]:
        """Task-specific figures written into ``folder`` by ``did eval --plots``; default none.

        ``sampler`` and ``generator`` are the run's; ``solve(context, x)`` solves the induced games with the
        exact block.
        """
        return []

    def improved(self, value: Tensor, baseline: Tensor) -> Tensor:
        """Per context: is ``value`` strictly better than ``baseline``?"""
        return value < baseline if self.minimize else value > baseline


@dataclass(frozen=True)
class Task:
    """A design task: what ``did train --task NAME`` trains and ``did eval`` and ``did design`` apply.

    ``sampler`` and ``objective`` are factories ``(**options)`` of a ``ContextSampler`` and a
    ``DesignObjective``; ``generator`` a factory ``(sampler, **options) -> nn.Module``.
    ``train_profiles``: trainer settings (``TrainConfig`` fields such as ``steps``, ``lr``,
    ``batch_size``) per profile name (:func:`quick_profile`, :func:`paper_profile`);
    ``polish_budget``: Nelder-Mead evaluations per context of the local polish; ``size_axis``:
    what the sampler's ``size_of`` labels measure, for reports and plots; ``instances``: how
    ``did design`` reads one instance file and shows an intervention (``None``: the task cannot
    be designed for from a file); ``shipped``: a folder with one trained generator per concept
    (``shipped/cce``, see :mod:`did_core.shipped`).
    """

    sampler: Callable[..., ContextSampler]
    objective: Callable[..., DesignObjective]
    generator: "Callable[..., nn.Module]"
    description: str = ""
    size_axis: str = "game size"
    train_profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    polish_budget: int = 4000
    instances: InstanceFormat | None = None
    shipped: "Path | None" = None

    def __post_init__(self) -> None:
        for name in ("sampler", "objective", "generator"):
            if not callable(getattr(self, name)):
                raise ValueError(f"Task.{name} must be a factory (callable), got {getattr(self, name)!r}")
        if not (isinstance(self.polish_budget, int) and self.polish_budget >= 1):
            raise ValueError(f"Task.polish_budget must be an int >= 1, got {self.polish_budget!r}")


def linear_ramp(progress: float, start: float, end: float, fraction: float) -> float:
    """A penalty weight ramped linearly from ``start`` (progress 0) to ``end`` (progress ``fraction``), then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, max(0.0, progress) / fraction)


class RampedPenalty(Options):
    """Options of a penalty whose weight ramps linearly from ``lam_start`` (progress 0) to ``lam`` (progress
    ``ramp``), then stays ``lam``: a generator first learns to reach the goal, then to reach it cheaply.

    An objective's ``Options`` subclass it and redeclare a field to give it their own default, bounds or
    description. One whose final weight is fixed declares it a class constant, ``lam: ClassVar[float] = 1.0``:
    ``lam`` is then no option (``lam`` given is refused) and :meth:`weight` ramps to that constant.
    """

    lam: float = Field(1.0, ge=0, description="final weight of the penalty")
    lam_start: float = Field(0.0, ge=0, description="weight of the penalty at the start of training")
    ramp: float = Field(0.5, ge=0, le=1, description="fraction of training over which lam ramps up")

    def weight(self, progress: float) -> float:
        """The penalty's weight at training ``progress`` in ``[0, 1]`` (:func:`linear_ramp`)."""
        return linear_ramp(progress, self.lam_start, self.lam, self.ramp)


#: The seed paper's training settings: every task's ``paper`` profile but what the task states otherwise
#: (:func:`paper_profile`).
PAPER_TRAINING: Mapping[str, Any] = MappingProxyType(
    {"steps": 20000, "batch_size": 64, "lr": 1e-3, "warmup_steps": 500, "eval_contexts": 1024})

#: A short run for checks and examples: every task's ``quick`` profile but what the task states otherwise,
#: typically the steps or evaluation contexts it was measured to need (:func:`quick_profile`).
QUICK_TRAINING: Mapping[str, Any] = MappingProxyType(
    {"steps": 300, "batch_size": 64, "lr": 3e-3, "warmup_steps": 20, "eval_contexts": 256})


def paper_profile(**overrides: Any) -> dict[str, Any]:
    """A task's ``paper`` trainer settings: :data:`PAPER_TRAINING` with ``overrides`` (``TrainConfig`` fields)."""
    return {**PAPER_TRAINING, **overrides}


def quick_profile(**overrides: Any) -> dict[str, Any]:
    """A task's ``quick`` trainer settings: :data:`QUICK_TRAINING` with ``overrides`` (``TrainConfig`` fields)."""
    return {**QUICK_TRAINING, **overrides}


def context_size(context: Context) -> int:
    """Number of contexts in a batch."""
    return next(iter(context.values())).shape[0]


def index_context(context: Context, index: Tensor | slice | list[int]) -> Context:
    """The sub-batch ``index`` of every tensor of a context."""
    return {k: v[index] for k, v in context.items()}
