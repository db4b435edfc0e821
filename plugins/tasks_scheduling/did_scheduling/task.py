"""Machine scheduling: taxes that steer selfish jobs to a short makespan (docs/mathematics.md, 6.3).

Context: ``N`` players, each with one job, choose one of ``m ~ U{min..max}``
machines (the same machines for every player, padded to ``max_machines``).
Job ``i`` takes ``tau_{i,k} ~ U[0, 1]`` on machine ``k``. Jobs sharing a machine
run in random order, so player ``i`` on machine ``k`` expects to finish at

    tau_{i,k} + (1/2) sum_{j != i, a_j = k} tau_{j,k}

and its utility is the negative of that. The designer cares about the makespan
``M(a) = max_k sum_{i: a_i = k} tau_{i,k}``.

Intervention: the payoff change ``-x`` where ``x_i(a) >= 0`` is player ``i``'s tax
at joint action ``a`` (the generator ends in ``-softplus``); the induced game is
``u_i(a) - x_i(a)``. Positive entries of an intervention (only a local polish can
propose them) are clipped: taxes are never negative. Loss
``E_sigma M + lam * E_sigma sum_i x_i`` with ``lam`` ramped linearly from
``lam_start`` to ``lam`` over the first ``ramp`` fraction of training. Value
``E_sigma M``; the reported metric is its change against no tax (negative is good).

Shapes: ``times, mask [B, N, M]``; ``utilities, intervention [B, N, M, .., M]``
(``N`` machine axes); ``makespan, sigma [B, M, .., M]``. Padded machines carry
zero times, payoffs and makespans.

Example::

    >>> import torch
    >>> from did_scheduling import SchedulingObjective, SchedulingSampler
    >>> sampler = SchedulingSampler(min_machines=2, max_machines=4)
    >>> context = sampler.sample(8, torch.Generator().manual_seed(0))
    >>> context["utilities"].shape, context["makespan"].shape
    (torch.Size([8, 2, 4, 4]), torch.Size([8, 4, 4]))
    >>> games, mask = SchedulingObjective().induce(context, -torch.rand(8, 2, 4, 4))
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from did_core.blocks import Equilibrium
from did_core.games import joint_mask
from did_core.tasks import Context, ContextSampler, DesignObjective, Options, RampedPenalty

__all__ = ["SchedulingSampler", "SchedulingObjective", "scheduling_game"]


def _diagonal_on_axes(values: Tensor, axes: tuple[int, ...], n_axes: int) -> Tensor:
    """``values [B, M]`` on the diagonal of the given axes of a ``[B, M.. (n_axes)]`` broadcastable tensor.

    For two axes ``(i, j)`` entry ``[k, l]`` is ``values[k] * 1[k == l]``; for one
    axis it is ``values`` along that axis (size 1 elsewhere).
    """
    batch, machines = values.shape
    view = [batch] + [1] * n_axes
    if len(axes) == 1:
        view[1 + axes[0]] = machines
        return values.reshape(view)
    diag = torch.diag_embed(values)  # [B, M, M], symmetric in its last two axes
    for axis in axes:
        view[1 + axis] = machines
    return diag.reshape(view)


def scheduling_game(times: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Untaxed utilities and makespans of a batch of scheduling games.

    **Arguments:** ``times [B, N, M]`` (job time of player ``i`` on machine ``k``),
    ``mask [B, N, M]`` (real machines; the same row for every player).

    **Returns:** ``utilities [B, N, M, .., M]`` with
    ``u_i(a) = -(tau_{i,a_i} + 1/2 sum_{j != i, a_j = a_i} tau_{j,a_i})`` and
    ``makespan [B, M, .., M]`` with ``M(a) = max_k sum_{i: a_i = k} tau_{i,k}``;
    both 0 on padded joint actions.
    """
    batch, n_players, machines = times.shape
    times = times * mask
    jm = joint_mask(mask, [machines] * n_players)
    utilities = []
    for p in range(n_players):
        cost = _diagonal_on_axes(times[:, p], (p,), n_players)
        for j in range(n_players):
            if j != p:
                cost = cost + 0.5 * _diagonal_on_axes(times[:, j], (p, j), n_players)
        utilities.append(-cost.expand(batch, *[machines] * n_players))
    # load[b, k, a] = sum_i tau_{i,k} 1[a_i = k]: machine axis k first, then the joint action.
    load = torch.zeros(batch, machines, *[machines] * n_players, dtype=times.dtype, device=times.device)
    for i in range(n_players):
        load = load + _diagonal_on_axes(times[:, i], (n_players, i), n_players + 1).movedim(-1, 1)
    makespan = load.amax(dim=1)
    return torch.stack(utilities, dim=1) * jm.unsqueeze(1), makespan * jm


class SchedulingSampler(ContextSampler):
    """Job times on ``m ~ U{min_machines..max_machines}`` machines, padded to ``max_machines``.

    Context keys: ``times [B, N, M]`` (0 on padded machines), ``mask [B, N, M]``,
    ``utilities [B, N, M..]`` (the untaxed game), ``makespan [B, M..]``.
    """

    class Options(Options):
        n_players: int = Field(2, ge=1, le=4)
        min_machines: int = Field(2, ge=1)
        max_machines: int = Field(16, ge=1, le=32)
        makespan_feature: bool = Field(True, description="give the generator the makespan as a second channel")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"min_machines": 2, "max_machines": 4},
        "paper": {"min_machines": 2, "max_machines": 16},
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        if o.min_machines > o.max_machines:
            raise ValueError(f"invalid options for SchedulingSampler: min_machines {o.min_machines} "
                             f"> max_machines {o.max_machines}")
        if o.max_machines ** o.n_players > 2 ** 16:
            raise ValueError(f"invalid options for SchedulingSampler: {o.n_players} players on "
                             f"{o.max_machines} machines give {o.max_machines ** o.n_players} joint actions "
                             f"(at most {2 ** 16})")

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        counts = torch.randint(o.min_machines, o.max_machines + 1, (batch, 1, 1), generator=generator)
        mask = (torch.arange(o.max_machines).view(1, 1, -1) < counts).expand(batch, o.n_players, -1).clone()
        times = torch.rand(batch, o.n_players, o.max_machines, generator=generator) * mask
        utilities, makespan = scheduling_game(times, mask)
        return {"times": times, "mask": mask, "utilities": utilities, "makespan": makespan}

    def size_of(self, context: Context) -> Tensor:
        """The number of machines."""
        return context["mask"][:, 0].sum(dim=1)

    def extents(self, context: Context) -> Tensor:
        """The number of machines, once per player ``[B, N]``."""
        return context["mask"].sum(dim=2)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        players = tuple(range(self.options.n_players))
        return {
            "times": {2: players},
            "mask": {2: players},
            "utilities": {2 + p: (p,) for p in players},
            "makespan": {1 + p: (p,) for p in players},
        }

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """``[B, C, N, M..]``: the untaxed utilities, and (``makespan_feature``) the makespan for every player."""
        utilities = context["utilities"]
        channels = [utilities]
        if self.options.makespan_feature:
            channels.append(context["makespan"].unsqueeze(1).expand_as(utilities))
        return torch.stack(channels, dim=1), context["mask"]


class SchedulingObjective(DesignObjective):
    """Expected makespan plus ``lam`` times the expected taxes paid (``lam`` ramped)."""

    class Options(RampedPenalty):
        lam: float = Field(0.1, ge=0, description="final weight of the expected taxes paid")
        lam_start: float = Field(0.0, ge=0, description="weight of the taxes paid at the start of training")

    minimize: ClassVar[bool] = True
    report_change: ClassVar[bool] = True
    metric_name: ClassVar[str] = "makespan change"

    def taxes(self, context: Context, intervention: Tensor) -> Tensor:
        """Taxes ``x [B, N, M..] >= 0`` of an intervention ``-x`` (0 on padded joint actions)."""
        mask = context["mask"]
        jm = joint_mask(mask, intervention.shape[2:]).unsqueeze(1)
        return (-intervention).clamp_min(0) * jm

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        utilities = context["utilities"].to(intervention.dtype)
        return utilities - self.taxes(context, intervention), context["mask"]

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        """Expected makespan ``E_sigma M`` per context."""
        makespan = context["makespan"].to(eq.sigma.dtype)
        return (eq.sigma * makespan).flatten(1).sum(dim=1)

    def linear_value(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        """``E_sigma M``: the makespan ``[B, M..]`` is the coefficient of every joint action, constant 0."""
        makespan = context["makespan"]
        return makespan, makespan.new_zeros(makespan.shape[0])

    def taxes_paid(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        """Expected total tax ``E_sigma sum_i x_i`` per context."""
        taxes = self.taxes(context, intervention).to(eq.sigma.dtype).sum(dim=1)
        return (eq.sigma * taxes).flatten(1).sum(dim=1)

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        makespan = self.value(context, intervention, eq).mean()
        paid = self.taxes_paid(context, intervention, eq).mean()
        lam = self.options.weight(progress)
        return makespan + lam * paid, {"makespan": float(makespan.detach()), "taxes_paid": float(paid.detach()), "lam": lam}

    def bound(self, context: Context) -> Tensor:
        """The shortest makespan of any real joint action ``[B]``: no distribution of play does better."""
        makespan = context["makespan"]
        real = joint_mask(context["mask"], makespan.shape[1:])
        return torch.where(real, makespan, torch.full_like(makespan, torch.inf)).flatten(1).amin(dim=1)

    def baseline_intervention(self, context: Context) -> Tensor:
        """No tax: zeros ``[B, N, M..]``."""
        return torch.zeros_like(context["utilities"])

    def intervention_mask(self, context: Context) -> Tensor:
        """Real entries of an intervention: every player's slice at the real joint actions."""
        utilities = context["utilities"]
        jm = joint_mask(context["mask"], utilities.shape[2:])
        return jm.unsqueeze(1).expand_as(utilities)
