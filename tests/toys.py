"""Toy plugins for the core's tests, written only against the documented plugin interfaces (docs/plugins.md).

* ``toy_exact``: an exact block (a ``DualSolverBlock``) that solves each game's
  dual ``min_{alpha >= 0} logsumexp(log_target - D^T alpha) + alpha . eps`` with
  scipy's L-BFGS-B on its real rows and joint actions, then polishes the result
  by Newton steps on the rows L-BFGS-B left positive. Its ``preference`` is low, so
  an installed exact plugin stays the default exact block.
* ``toy_task``: make joint action ``(0, 0)`` of a random 2-player game likely by
  adding a bonus game (games of 2 or 3 actions per player, padded), with the core
  ``p2p`` generator.
* ``toy_three_player``: the toy sampler with three players, a sampler registered on
  its own that does *not* fit the toy objective (for "parts that do not work
  together").
* ``toy_stalled`` (only inside :func:`stalled_plugin`): ``toy_exact`` that gives up
  at its cold start on about half of the games, flags them and warns, as an exact
  block does when it runs out of iterations.

:func:`installed` registers a module of hook implementations as a throw-away
plugin (a fake entry point of the group ``did``) and restores the plugin state
after; ``tests/conftest.py`` installs this module around every core test module.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from importlib import metadata
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import minimize
from torch import Tensor

from did_core import plugins
from did_core.blocks import Capabilities, DualSolverBlock, Equilibrium, NonConvergenceWarning, SolverOutput
from did_core.equilibria import Constraints
from did_core.hookspecs import hookimpl
from did_core.nn.generators import PayoffGenerator
from did_core.registry import Registry
from did_core.tasks import Context, ContextSampler, DesignObjective, Options, Task

TOY_PLUGIN, TOY_DISTRIBUTION = "did_core_test_toys", "did-core-test-toys"
TOY_BLOCK, TOY_TASK, TOY_MISFIT_SAMPLER = "toy_exact", "toy_task", "toy_three_player"
TOY_STALLED = "toy_stalled"


# ---------------------------------------------------------------------------------------------- the exact block

def _softmax(logits: np.ndarray) -> np.ndarray:
    w = np.exp(logits - logits.max())
    return w / w.sum()


def kkt_residual(beta: np.ndarray, gains: np.ndarray, eps: np.ndarray, log_target: np.ndarray) -> float:
    """The projected-gradient residual ``max |beta - max(0, beta - grad f(beta))|`` of the dual (0 at the optimum)."""
    grad = eps - gains @ _softmax(log_target - gains.T @ beta)
    return float(np.abs(beta - np.maximum(0.0, beta - grad)).max(initial=0.0))


def solve_one(gains: np.ndarray, eps: np.ndarray, log_target: np.ndarray, beta0: np.ndarray | None = None,
              tol: float = 1e-11, max_iter: int = 5000) -> tuple[np.ndarray, np.ndarray, float]:
    """One game's eps-ME program through its dual: ``gains [K, J]``, ``eps [K]``, ``log_target [J]`` (all real).

    **Returns:** ``sigma [J]``, ``alpha [K] >= 0`` and the scaled KKT residual. The rows
    are scaled to ``max |D| = 1`` first (so ``tol`` is relative to the payoffs).
    """
    scale = float(np.abs(gains).max(initial=0.0)) or 1.0
    d, e = gains / scale, eps / scale

    def f(beta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = log_target - d.T @ beta
        top = logits.max()
        w = np.exp(logits - top)
        return float(top + np.log(w.sum()) + beta @ e), e - d @ (w / w.sum())

    beta = np.zeros(len(e)) if beta0 is None else np.clip(np.nan_to_num(beta0 * scale), 0.0, None)
    if len(e):
        beta = minimize(f, beta, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(e),
                        options={"maxiter": max_iter, "ftol": 1e-16, "gtol": tol, "maxcor": 30}).x
        beta = _newton_polish(beta, d, e, log_target)
    residual = kkt_residual(beta, d, e, log_target)
    return _softmax(log_target - d.T @ beta), beta / scale, residual


def _newton_polish(beta: np.ndarray, d: np.ndarray, e: np.ndarray, log_target: np.ndarray) -> np.ndarray:
    """Newton on ``D_S sigma(beta) = eps_S`` over the rows ``S`` with a positive multiplier; kept only if better."""
    best, best_residual = beta, kkt_residual(beta, d, e, log_target)
    active = beta > 0
    if not active.any():
        return best
    candidate = beta.copy()
    for _ in range(30):
        sigma = _softmax(log_target - d.T @ candidate)
        rows = d[active]
        centred = (rows - (rows @ sigma)[:, None]) * np.sqrt(sigma)  # D_S Cov D_S^T = centred centred^T
        step = np.linalg.lstsq(centred @ centred.T, rows @ sigma - e[active], rcond=1e-12)[0]
        candidate = candidate.copy()
        candidate[active] = np.maximum(candidate[active] + step, 0.0)
        residual = kkt_residual(candidate, d, e, log_target)
        if residual < best_residual:
            best, best_residual = candidate, residual
        if best_residual < 1e-15 or not np.isfinite(residual):
            break
    return best


class ToyExactBlock(DualSolverBlock):
    """Exact eps-ME equilibria of any concept, one game at a time, by scipy L-BFGS-B on the dual (slow, simple)."""

    name = TOY_BLOCK
    description = "test toy: exact eps-ME equilibria by L-BFGS-B on the dual, one game at a time"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=True, devices=("cpu",), preference=-100)

    def __init__(self, tol: float = 1e-11, max_iter: int = 5000) -> None:
        if not (isinstance(tol, (int, float)) and tol > 0):
            raise ValueError(f"tol must be a number > 0, got {tol!r}")
        if not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
        self.tol, self.max_iter = float(tol), max_iter

    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        gains = cons.gains.detach().cpu().double().numpy()
        eps = cons.eps.detach().cpu().double().numpy()
        rows = cons.rows.cpu().numpy()
        log_target = cons.log_target.detach().cpu().double().numpy()
        joint = np.isfinite(log_target)
        start = None if alpha0 is None else alpha0.detach().cpu().double().numpy()
        sigma, alpha = np.zeros(log_target.shape), np.zeros(rows.shape)
        residual = np.full(len(rows), np.inf)
        for b in range(len(rows)):
            d, e = gains[b][rows[b]][:, joint[b]], eps[b][rows[b]]
            if not (np.isfinite(d).all() and np.isfinite(e).all()):
                sigma[b], alpha[b] = np.nan, np.nan  # flagged, never hidden: the caller sees non-finite numbers
                continue
            s, a, residual[b] = solve_one(d, e, log_target[b][joint[b]], None if start is None else start[b][rows[b]],
                                          self.tol, self.max_iter)
            sigma[b, joint[b]], alpha[b, rows[b]] = s, a
        to = {"dtype": torch.float64, "device": cons.rows.device}
        return SolverOutput(torch.as_tensor(sigma, **to), torch.as_tensor(alpha, **to),
                            {"converged": torch.as_tensor(residual <= 1e-8, device=cons.rows.device),
                             "kkt": torch.as_tensor(residual, **to)})


class ToyStalledBlock(ToyExactBlock):
    """``toy_exact``, except that it stops at the cold start (``alpha = 0``: the uniform joint) on every game whose
    first constraint row sums to a positive number (about half of random games), flags those games unconverged and
    warns once per batch."""

    name = TOY_STALLED
    capabilities: ClassVar[Capabilities] = Capabilities(exact=True, devices=("cpu",), preference=-200)

    def solve_dual(self, cons: Constraints, alpha0: Tensor | None) -> SolverOutput:
        out = super().solve_dual(cons, alpha0)
        stalled = cons.gains[:, 0].sum(dim=1) > 0
        if bool(stalled.any()):
            warnings.warn(f"{TOY_STALLED}: {int(stalled.sum())} of {len(stalled)} games did not converge",
                          NonConvergenceWarning, stacklevel=4)
        uniform = torch.softmax(cons.log_target, dim=1)
        return SolverOutput(torch.where(stalled.unsqueeze(1), uniform, out.sigma),
                            torch.where(stalled.unsqueeze(1), 0.0, out.alpha),
                            {"converged": out.info["converged"] & ~stalled})


# ---------------------------------------------------------------------------------------------- the task

class ToySampler(ContextSampler):
    """Random games ``base [B, N, A..]`` (``N(0, 1)`` payoffs, zero on padding) of ``min..max`` actions per player."""

    class Options(Options):
        n_players: int = Field(2, ge=2, le=3)
        min_actions: int = Field(2, ge=1)
        max_actions: int = Field(3, ge=1, le=6)

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"quick": {"min_actions": 2, "max_actions": 3}}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.min_actions > self.options.max_actions:
            raise ValueError(f"invalid options for ToySampler: min_actions {self.options.min_actions} > "
                             f"max_actions {self.options.max_actions}")

    def sample(self, batch: int, generator: torch.Generator) -> Context:
        o = self.options
        counts = torch.randint(o.min_actions, o.max_actions + 1, (batch, o.n_players), generator=generator)
        mask = torch.arange(o.max_actions) < counts.unsqueeze(2)
        base = torch.randn(batch, o.n_players, *[o.max_actions] * o.n_players, generator=generator)
        return {"base": base * real_joints(mask, base.shape[2:]).unsqueeze(1), "mask": mask}

    def size_of(self, context: Context) -> Tensor:
        return context["mask"].sum(dim=2).amax(dim=1)

    def extents(self, context: Context) -> Tensor:
        return context["mask"].sum(dim=2)

    def padded_axes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        players = range(self.options.n_players)
        return {"base": {2 + p: (p,) for p in players}, "mask": {2: tuple(players)}}

    def payoff_features(self, context: Context) -> tuple[Tensor, Tensor]:
        """Two channels: the base game and, for every player, a marker on joint action ``(0, .., 0)``."""
        base = context["base"]
        marker = torch.zeros_like(base)
        marker[(slice(None), slice(None)) + (0,) * (base.dim() - 2)] = 1.0
        return torch.stack([base, marker], dim=1), context["mask"]


def real_joints(mask: Tensor, sizes: Any) -> Tensor:
    """Real joint actions ``[B, A_1..A_N]`` of an action mask ``[B, N, A_max]`` for games of ``sizes`` (padded)."""
    out = mask[:, 0, :sizes[0]]
    for p in range(1, mask.shape[1]):
        out = out.unsqueeze(-1) & mask[:, p, :sizes[p]].reshape(mask.shape[0], *[1] * p, -1)
    return out


class ToyObjective(DesignObjective):
    """Make joint action ``(0, 0)`` likely: the game is ``base + x``; loss ``-P(0, 0) + weight * mean x^2``."""

    class Options(Options):
        weight: float = Field(0.01, ge=0)

    minimize: ClassVar[bool] = True
    metric_name: ClassVar[str] = "-P(0,0)"

    def induce(self, context: Context, intervention: Tensor) -> tuple[Tensor, Tensor]:
        if context["base"].shape[1] != 2:
            raise ValueError(f"the toy objective needs 2-player games, got {context['base'].shape[1]} players")
        base, mask = context["base"], context["mask"]
        return (base.to(intervention.dtype) + intervention) * real_joints(mask, base.shape[2:]).unsqueeze(1), mask

    def value(self, context: Context, intervention: Tensor, eq: Equilibrium) -> Tensor:
        return -eq.sigma[:, 0, 0]

    def loss(self, context: Context, intervention: Tensor, eq: Equilibrium, progress: float
             ) -> tuple[Tensor, dict[str, float]]:
        real = self.intervention_mask(context)
        size = real.flatten(1).sum(dim=1)
        cost = ((intervention.pow(2) * real).flatten(1).sum(dim=1) / size).mean()  # mean over real entries
        value = self.value(context, intervention, eq).mean()
        return value + self.options.weight * cost.to(value.dtype), {"p00": float(-value.detach())}

    def baseline_intervention(self, context: Context) -> Tensor:
        return torch.zeros_like(context["base"])

    def intervention_mask(self, context: Context) -> Tensor:
        base = context["base"]
        return real_joints(context["mask"], base.shape[2:]).unsqueeze(1).expand_as(base)


TOY = Task(sampler=ToySampler, objective=ToyObjective, generator=PayoffGenerator,
           description="test toy: make joint action (0, 0) of a random 2-player game likely with a bonus game",
           size_axis="actions of the larger player",
           train_profiles={"quick": {"steps": 20, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "eval_contexts": 16}},
           polish_budget=200)


@hookimpl
def did_register_blocks(register: Registry) -> None:
    register.add(TOY_BLOCK, ToyExactBlock)


@hookimpl
def did_register_tasks(register: Registry) -> None:
    register.add(TOY_TASK, TOY)


@hookimpl
def did_register_samplers(register: Registry) -> None:
    register.add(TOY_MISFIT_SAMPLER, partial(ToySampler, n_players=3))


# ---------------------------------------------------------------------------------------------- installing

@contextmanager
def installed(module: ModuleType, name: str, distribution: str) -> Iterator[plugins.PluginState]:
    """Plugins loaded as if ``module`` were installed as ``distribution`` with entry point ``name``; restored after.

    ``DID_LOAD_PLUGINS``, when set, gets ``name`` added (the throw-away plugin loads
    whatever the restriction; installed plugins stay as restricted).
    """
    point = SimpleNamespace(name=name, value=module.__name__, load=lambda: module,
                            dist=SimpleNamespace(name=distribution, version="0.0"))
    previous_points, previous_env = metadata.entry_points, os.environ.get("DID_LOAD_PLUGINS")

    def entry_points(**params: Any) -> Any:
        found = previous_points(**params)
        return [*found, point] if params.get("group") == "did" else found

    metadata.entry_points = entry_points
    if previous_env is not None:
        os.environ["DID_LOAD_PLUGINS"] = ",".join([previous_env, name])
    try:
        yield plugins.load_plugins(force=True)
    finally:
        metadata.entry_points = previous_points
        if previous_env is not None:
            os.environ["DID_LOAD_PLUGINS"] = previous_env
        plugins.load_plugins(force=True)


def toy_plugins() -> Any:
    """:func:`installed` for this module's toys."""
    return installed(sys.modules[__name__], TOY_PLUGIN, TOY_DISTRIBUTION)


def stalled_plugin() -> Any:
    """:func:`installed` for a plugin that registers ``toy_stalled`` alone (use it inside :func:`toy_plugins`)."""
    module = ModuleType("did_core_test_stalled")

    @hookimpl
    def did_register_blocks(register: Registry) -> None:
        register.add(TOY_STALLED, ToyStalledBlock)

    module.did_register_blocks = did_register_blocks  # type: ignore[attr-defined]
    return installed(module, "did_core_test_stalled", "did-core-test-stalled")


def loaded() -> bool:
    """Whether the current plugin state holds the toys (a test may have reloaded it without them)."""
    state = plugins.load_plugins()
    return TOY_BLOCK in state.registries["blocks"] and TOY_TASK in state.registries["tasks"]
