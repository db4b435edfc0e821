"""The task interface: context samplers, designer objectives and generators (docs/mathematics.md, section 6).

A *task* is a name under which a plugin registers three things through the hooks:

* a sampler (``did_register_samplers``): a ``ContextSampler`` drawing problem
  instances. A context is a ``dict[str, Tensor]`` whose every tensor has the
  batch as its leading axis (so contexts slice and concatenate generically);
* a designer objective (``did_register_losses``): a ``DesignObjective`` that
  induces the game from a context and an intervention, and scores the
  equilibrium (training loss, evaluation value, naive baseline);
* a default generator (``did_register_generators``): a factory
  ``(sampler, **options) -> nn.Module`` mapping a context to an intervention.

Every component declares its options as a pydantic model ``Options`` (unknown or
invalid fields are rejected with a clear message) and may declare ``PROFILES``:
option overrides per profile name (``"quick"``, ``"paper"``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor

from did_core.blocks import Equilibrium

__all__ = [
    "Context",
    "Options",
    "Configurable",
    "ContextSampler",
    "DesignObjective",
    "index_context",
    "context_size",
    "options_error",
    "linear_ramp",
]

Context = dict[str, Tensor]


class Options(BaseModel):
    """Base of every component's options: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def options_error(owner: str, error: ValidationError) -> ValueError:
    """One line naming every invalid field of ``owner``'s options."""
    parts = []
    for item in error.errors():
        field = ".".join(str(x) for x in item["loc"]) or "(options)"
        parts.append(f"{field}: {item['msg']}")
    return ValueError(f"invalid options for {owner}: " + "; ".join(parts))


class Configurable:
    """Mixin: ``__init__(**options)`` validates ``options`` against ``Options``."""

    Options: ClassVar[type[Options]] = Options
    #: profile name -> option overrides.
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, **options: Any) -> None:
        try:
            self.options = self.Options(**options)
        except ValidationError as exc:
            raise options_error(type(self).__name__, exc) from None


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
    #: function evaluations of the local polish (Nelder-Mead) per context.
    polish_budget: ClassVar[int] = 4000

    @abstractmethod
    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """The induced games ``[B, N, A_1..A_N]`` and mask ``[B, N, A_max]``."""

    @abstractmethod
    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        """Scalar training loss and named scalars to log; ``progress`` in ``[0, 1]`` drives ramps."""

    @abstractmethod
    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        """The designer's outcome per context ``[B]``."""

    @abstractmethod
    def baseline_intervention(self, context: Context) -> Tensor:
        """The naive intervention (e.g. no contract, no tax, a constant game), same shape as a generator's output."""

    def intervention_mask(self, context: Context) -> Tensor | None:
        """Which entries of an intervention are real (for the local polish); ``None``: all."""
        return None

    def extra_plots(self, parts: Any, solve: Callable[[Context, Tensor], Equilibrium], folder: Path) -> list[Path]:
        """Task-specific figures written into ``folder`` by ``did eval --plots``; default none.

        ``parts`` holds the run's sampler and generator; ``solve(context, x)`` solves the
        induced games with the exact block.
        """
        return []

    def improved(self, value: Tensor, baseline: Tensor) -> Tensor:
        """Per context: is ``value`` strictly better than ``baseline``?"""
        return value < baseline if self.minimize else value > baseline


def linear_ramp(progress: float, start: float, end: float, fraction: float) -> float:
    """A penalty weight ramped linearly from ``start`` (progress 0) to ``end`` (progress ``fraction``), then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, max(0.0, progress) / fraction)


def context_size(context: Context) -> int:
    """Number of contexts in a batch."""
    return next(iter(context.values())).shape[0]


def index_context(context: Context, index: Tensor | slice | list[int]) -> Context:
    """The sub-batch ``index`` of every tensor of a context."""
    return {k: v[index] for k, v in context.items()}
