"""Training an affine maximizer for one cell: first-order through the policy block, the published zeroth-order
estimator, or a Sobol grid search.

Gradient methods train ``K`` starts at once (start 0 is VCG, the others random boosts of scale ``init_scale``):
``log_weights [K, N]`` and ``boosts [K, S, A]`` are one module, the loss is the sum of the starts' losses (Adam
and the schedule act per entry, and no gradient clipping couples them), so the starts are independent runs
sharing each batch of type profiles. Every ``validate_every`` steps each start is evaluated exactly
(``alpha = 0``) on a fixed validation sample; the best so far is kept in the module's buffers, so a resumed run
(``did_core.loop.TrainingLoop``: progress, TensorBoard, atomic checkpoints, exact resume) keeps it too. The
result is the best start's mechanism, measured on a separate evaluation sample.

Seeds: training profiles from ``seed``; validation from ``seed + VALIDATION_OFFSET``; evaluation from
``seed + EVALUATION_OFFSET``: three disjoint streams.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any
from collections.abc import Callable

import torch
from torch import Tensor, nn

from did_core.affine_maximizer import AffineMaximizer, run_affine_maximizer
from did_core.files import shown
from did_core.loop import LoopSettings, Schedule, TrainingLoop
from did_core.policy import PolicyBlock, default_block
from did_core.runs import RunDir
from did_dynamic.evaluation import Measured, evaluate
from did_dynamic.settings import Setting
from did_dynamic.zeroth_order import ZerothOrder

__all__ = ["LIMITS", "TrainSettings", "Starts", "METHODS", "train", "sobol_search", "VALIDATION_OFFSET", "EVALUATION_OFFSET"]

METHODS = ("first-order", "zeroth-order", "sobol")

#: Upper bounds of the integer settings (a larger value is a mistake, refused before any work).
LIMITS = {"steps": 1_000_000, "batch": 8192, "starts": 64, "validate_every": 1_000_000,
          "validation_profiles": 10_000_000, "eval_profiles": 10_000_000, "perturbations": 1000,
          "candidates": 1_000_000, "seed": 2**31}
VALIDATION_OFFSET = 1_000_003
EVALUATION_OFFSET = 2_000_029


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run of one cell depends on (with the cell, the run's config)."""

    method: str = "first-order"
    starts: int = 4
    steps: int = 1500
    batch: int = 64
    lr: float = 0.05
    final_lr_fraction: float = 0.05
    alpha: float = 0.01
    alpha_start: float = 0.1
    init_scale: float = 0.2
    validate_every: int = 100
    validation_profiles: int = 10_000
    eval_profiles: int = 100_000
    seed: int = 0
    perturbations: int = 10
    sigma: float = 0.01
    candidates: int = 256

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "TrainSettings":
        """The settings a run's config stored (``asdict``), each value checked against its field's type."""
        defaults = cls()
        if not isinstance(data, dict) or not set(data) <= {f.name for f in fields(cls)}:
            raise ValueError(f"{source}: the training settings must be an object with the keys of TrainSettings")
        for name, value in data.items():
            kind = type(getattr(defaults, name))
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
            if not ok or isinstance(value, bool):
                raise ValueError(f"{source}: {name} must be a{'n integer' if kind is int else ' ' + kind.__name__}, "
                                 f"got {shown(value)}")
        settings = cls(**{k: float(v) if isinstance(getattr(defaults, k), float) else v for k, v in data.items()})
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings no run could use (one-line ``ValueError``)."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        positive = {"starts": self.starts, "steps": self.steps, "batch": self.batch, "validate_every":
                    self.validate_every, "validation_profiles": self.validation_profiles, "eval_profiles":
                    self.eval_profiles, "perturbations": self.perturbations, "candidates": self.candidates}
        for name, value in positive.items():
            if not 1 <= value <= LIMITS[name]:
                raise ValueError(f"{name} must be in 1..{LIMITS[name]}, got {value}")
        if not 0 <= self.seed <= LIMITS["seed"]:
            raise ValueError(f"seed must be in 0..{LIMITS['seed']}, got {self.seed}")
        reals = {"lr": self.lr, "final_lr_fraction": self.final_lr_fraction, "sigma": self.sigma}
        for name, value in reals.items():
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        for name, value in {"alpha": self.alpha, "alpha_start": self.alpha_start,
                            "init_scale": self.init_scale}.items():
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.method == "first-order" and self.alpha == 0.0:
            raise ValueError("first-order training needs alpha > 0 (the exact optimum has no useful gradient)")


class Starts(nn.Module):
    """``K`` affine maximizers being trained (``log_weights [K, N]``, ``boosts [K, S, A]``) and the best one
    found so far by validation (buffers ``best_log_weights [N]``, ``best_boosts [S, A]``, ``best_value``:
    the validated objective, oriented so that larger is better)."""

    def __init__(self, setting: Setting, starts: int, init_scale: float, generator: torch.Generator) -> None:
        super().__init__()
        states, actions = setting.mdp.num_states, setting.mdp.num_actions
        boosts = init_scale * torch.randn(starts, states, actions, generator=generator, dtype=torch.float64)
        boosts[0] = 0.0  # start 0 is VCG
        self.log_weights = nn.Parameter(torch.zeros(starts, setting.n, dtype=torch.float64))
        self.boosts = nn.Parameter(boosts)
        self.register_buffer("best_log_weights", torch.zeros(setting.n, dtype=torch.float64))
        self.register_buffer("best_boosts", torch.zeros(states, actions, dtype=torch.float64))
        self.register_buffer("best_value", torch.tensor(-math.inf, dtype=torch.float64))

    def mechanism(self, k: int) -> AffineMaximizer:
        """Start ``k``'s current mechanism (detached)."""
        return AffineMaximizer(self.log_weights[k].detach().exp(), self.boosts[k].detach().clone())

    def best(self) -> AffineMaximizer:
        """The best mechanism validated so far."""
        return AffineMaximizer(self.best_log_weights.exp(), self.best_boosts.clone())


def _block(setting: Setting, config: TrainSettings) -> PolicyBlock:
    exact = default_block(setting.mdp)
    if config.method == "zeroth-order":
        return ZerothOrder(exact, config.perturbations, config.sigma)
    return exact


def _repeat(x: Tensor, times: int) -> Tensor:
    return x.repeat(times, *([1] * (x.dim() - 1)))


def annealed_alpha(config: TrainSettings, progress: float) -> float:
    """The smoothing at ``progress`` in ``[0, 1)``: geometric from ``alpha_start`` to ``alpha`` over the first
    half of the run, then ``alpha`` (0 for the zeroth-order method, which solves the exact problem). A larger
    smoothing first evens out the objective's plateaus between the exact policy's switching points."""
    if config.method == "zeroth-order":
        return 0.0
    start = max(config.alpha_start, config.alpha)
    return start * (config.alpha / start) ** min(2.0 * progress, 1.0)


def step_function(setting: Setting, model: Starts, config: TrainSettings,
                  rng: torch.Generator) -> Callable[[int, float], dict[str, float]]:
    """The loop's step: one batch of profiles, every start's (smoothed) loss, ``backward``."""
    block = _block(setting, config)
    sign = -1.0 if setting.maximize else 1.0
    starts = model.boosts.shape[0]

    def step(_step: int, progress: float) -> dict[str, float]:
        alpha = annealed_alpha(config, progress)
        types = setting.sample_types(config.batch, rng)
        weights = model.log_weights.exp().repeat_interleave(config.batch, 0)
        boosts = model.boosts.repeat_interleave(config.batch, 0)
        outcome = run_affine_maximizer(setting.mdp, _repeat(setting.rewards(types), starts),
                                       _repeat(setting.counterfactual_rewards(types), starts), weights, boosts,
                                       alpha, block)
        objective = setting.objective(outcome, _repeat(types, starts)).view(starts, config.batch).mean(1)
        (sign * objective.sum()).backward()
        objective = objective.detach()
        return {"loss": float(sign * objective.mean()), "alpha": alpha, "objective_best_start": float(
            objective.max() if setting.maximize else objective.min())}

    return step


def validator(setting: Setting, model: Starts, config: TrainSettings) -> Callable[[int], dict[str, float]]:
    """Exact validation of every start; the best so far goes into the model's buffers."""
    sign = 1.0 if setting.maximize else -1.0

    def validate(_done: int) -> dict[str, float]:
        scores = []
        for k in range(model.boosts.shape[0]):
            measured = evaluate(setting, model.mechanism(k), config.validation_profiles,
                                config.seed + VALIDATION_OFFSET)
            scores.append(measured.mean)
            if sign * measured.mean > float(model.best_value):
                with torch.no_grad():
                    model.best_log_weights.copy_(model.log_weights[k])
                    model.best_boosts.copy_(model.boosts[k])
                    model.best_value.fill_(sign * measured.mean)
        return {"objective_best": sign * float(model.best_value),
                **{f"objective_start{k}": value for k, value in enumerate(scores)}}

    return validate


def train(setting: Setting, config: TrainSettings, run: RunDir, resume: bool = False) -> tuple[AffineMaximizer,
                                                                                               Measured]:
    """Train ``setting`` with a gradient method in ``run`` (resuming its checkpoint with ``resume``); the best
    validated mechanism and its exact objective on ``config.eval_profiles`` fresh profiles."""
    rng = torch.Generator().manual_seed(config.seed)
    model = Starts(setting, config.starts, config.init_scale, torch.Generator().manual_seed(config.seed + 1))
    schedule = Schedule(lr=config.lr, warmup_steps=0, total_steps=config.steps,
                        final_fraction=config.final_lr_fraction)
    loop = LoopSettings(steps=config.steps, schedule=schedule, grad_clip=None, log_every=config.validate_every,
                        checkpoint_every=config.validate_every, validate_every=config.validate_every,
                        validate=validator(setting, model, config), label=setting.key,
                        extra_state={"config": asdict(config)})
    TrainingLoop(run, model, step_function(setting, model, config, rng), loop, rng).run(resume=resume)
    best = model.best()
    return best, evaluate(setting, best, config.eval_profiles, config.seed + EVALUATION_OFFSET)


def sobol_search(setting: Setting, config: TrainSettings,
                 progress: Callable[[int, float], None] | None = None) -> tuple[AffineMaximizer, Measured]:
    """The published grid-search baseline: ``config.candidates`` points of a Sobol sequence (boosts in the
    published box, ``[-n, n]`` for sales, ``[-n max(n, 3), n max(n, 3)]`` for scheduling, ``[-n / (1 - gamma),
    n / (1 - gamma)]`` for the grid; weights one, or Sobol points normalised to sum one for an asymmetric
    setting), each evaluated exactly on the validation sample; the best measured on the evaluation sample."""
    from scipy.stats import qmc

    states, actions = setting.mdp.num_states, setting.mdp.num_actions
    bound = {"sales": setting.n, "makespan": setting.n * max(setting.n, 3),
             "gridworld": setting.n / (1.0 - getattr(setting.mdp, "discount", 0.0))}[setting.family]
    free_weights = not setting.symmetric
    points = qmc.Sobol(states * actions + (setting.n if free_weights else 0), scramble=True,
                       seed=config.seed).random(config.candidates)
    sign = 1.0 if setting.maximize else -1.0
    best, best_value = None, -math.inf
    for i, point in enumerate(torch.from_numpy(points)):
        boosts = (-bound + 2.0 * bound * point[:states * actions]).reshape(states, actions)
        weights = torch.ones(setting.n, dtype=torch.float64)
        if free_weights:
            raw = point[states * actions:].clamp_min(1e-6)
            weights = raw / raw.sum()
        mechanism = AffineMaximizer(weights, boosts)
        value = sign * evaluate(setting, mechanism, config.validation_profiles, config.seed + VALIDATION_OFFSET).mean
        if value > best_value:
            best, best_value = mechanism, value
        if progress is not None:
            progress(i + 1, sign * best_value)
    assert best is not None  # candidates >= 1
    return best, evaluate(setting, best, config.eval_profiles, config.seed + EVALUATION_OFFSET)
