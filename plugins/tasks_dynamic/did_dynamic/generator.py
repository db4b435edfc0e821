"""One generator for all the cells of a setting: ``(w, b)`` from the cell's description.

The paper trains one mechanism per cell. Here a small network maps features of each state-action (what the
state means in any cell: rounds left, items sold, whether the action's agent already holds an item; a
worker's load and idle time; distances on the grid) together with the cell's description (``n``, ``m`` and
each agent's type range) to a boost, and features of each agent to its weight. Trained on the sum of the
cells' losses, it serves every cell of the setting, including sizes it was not trained on, with one set of
parameters. Features are numbers of order one, so the same network reads cells of different sizes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from did_core.affine_maximizer import AffineMaximizer
from did_core.loop import LoopSettings, Schedule, TrainingLoop
from did_core.runs import RunDir
from did_dynamic.evaluation import objective_of
from did_dynamic.settings import Setting
from did_dynamic.training import TrainSettings, annealed_alpha

__all__ = ["state_action_features", "agent_features", "CellGenerator", "train_generator"]


def _sales_features(setting: Setting) -> Tensor:
    n, m = setting.n, setting.m
    bounds = setting.bounds / setting.bounds.max()
    rows = []
    for label in setting.mdp.labels:
        t, given = label[0], [a for a in label[1:] if a != -1]
        holders = {a for a in given if a > 0}
        for action in range(n + 1):
            rows.append([1.0, t / m, (m - 1 - t) / m, len(holders) / m, (len(given) - len(holders)) / m,
                         float(action == 0), float(action in holders), (n - len(holders)) / n,
                         float(bounds[action - 1]) if action else 0.0, n / 5.0, m / 3.0])
    return torch.tensor(rows, dtype=torch.float64).reshape(len(setting.mdp.labels), n + 1, -1)


def _scheduling_features(setting: Setting) -> Tensor:
    n, m = setting.n, setting.m
    bounds = setting.bounds / setting.bounds.max()
    rows = []
    for label in setting.mdp.labels:
        t, given = label[0], [a for a in label[1:] if a != -1]
        for worker in range(1, n + 1):
            load = sum(a == worker for a in given)
            last = max((k for k, a in enumerate(given) if a == worker), default=-1)
            idle = (len(given) - 1 - last) if last >= 0 else len(given) + 1
            rows.append([1.0, t / m, (m - t) / m, float(t == m), load / m, idle / m,
                         float(bool(given) and given[-1] == worker), float(bounds[worker - 1]), n / 3.0, m / 5.0])
    return torch.tensor(rows, dtype=torch.float64).reshape(len(setting.mdp.labels), n, -1)


def _grid_features(setting: Setting) -> Tensor:
    m = setting.m
    moves = setting.mdp.transitions.argmax(-1)  # [S, A]: the cell each move enters
    labels = setting.mdp.labels

    def distance(cell: int) -> float:
        x, y = labels[cell]
        return (min(x - 1, m - x + 1) + min(y - 1, m - y + 1)) / m

    rows = [[1.0, distance(s), distance(int(moves[s, a])), float(int(moves[s, a]) == 0), setting.n / 5.0, m / 4.0]
            for s in range(len(labels)) for a in range(4)]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(labels), 4, -1)


def state_action_features(setting: Setting) -> Tensor:
    """``[S, A, F]``: the features of every state-action of ``setting`` (``F`` fixed per family)."""
    return {"sales": _sales_features, "makespan": _scheduling_features, "gridworld": _grid_features}[
        setting.family](setting)


def agent_features(setting: Setting) -> Tensor:
    """``[N, 5]``: each agent's rank, type range (relative and absolute) and the cell's size."""
    rank = torch.arange(1, setting.n + 1, dtype=torch.float64)
    bounds = setting.bounds
    return torch.stack([torch.ones_like(rank), rank / setting.n, bounds / bounds.max(), bounds / 3.0,
                        torch.full_like(rank, setting.n / 5.0)], dim=-1)


class CellGenerator(nn.Module):
    """``(w, b)`` for any cell of one family: ``b(s, a) = scale * MLP(features(s, a))``, ``log w_i = MLP(agent i)``.

    The last layers start at zero, so a fresh generator is VCG in every cell.
    """

    def __init__(self, features: int, width: int = 32, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.boost = nn.Sequential(nn.Linear(features, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                   nn.Linear(width, 1)).double()
        self.weight = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1)).double()
        for head in (self.boost[-1], self.weight[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self._features: dict[str, tuple[Tensor, Tensor]] = {}

    def forward(self, setting: Setting) -> AffineMaximizer:
        """The mechanism for ``setting`` (differentiable in the generator's parameters)."""
        if setting.key not in self._features:  # the features of a cell are computed once
            self._features[setting.key] = (state_action_features(setting), agent_features(setting))
        pairs, agents = self._features[setting.key]
        boosts = self.scale * self.boost(pairs).squeeze(-1)
        return AffineMaximizer(self.weight(agents).squeeze(-1).exp(), boosts)


def train_generator(settings: list[Setting], run: RunDir, steps: int, batch: int = 64, lr: float = 0.01,
                    seed: int = 0) -> CellGenerator:
    """A generator trained on the sum over ``settings`` (cells of one family) of each cell's mean loss, with
    the annealed smoothing of per-cell training (:func:`did_dynamic.training.annealed_alpha`), in ``run``
    (progress, TensorBoard, checkpoints)."""
    families = {s.family for s in settings}
    if len(families) != 1:
        raise ValueError(f"a generator serves the cells of one family, got {sorted(families)}")
    generator = CellGenerator(state_action_features(settings[0]).shape[-1])
    rng = torch.Generator().manual_seed(seed)
    smoothing = TrainSettings(steps=steps)

    def step(_step: int, progress: float) -> dict[str, float]:
        alpha, total = annealed_alpha(smoothing, progress), 0.0
        for setting in settings:
            mechanism = generator(setting)
            types = setting.sample_types(batch, rng)
            objective = objective_of(setting, mechanism, types, alpha).mean()
            loss = -objective if setting.maximize else objective
            loss.backward()
            total += float(loss.detach())
        return {"loss": total / len(settings), "alpha": alpha}

    schedule = Schedule(lr=lr, warmup_steps=0, total_steps=steps, final_fraction=0.05)
    loop = LoopSettings(steps=steps, schedule=schedule, grad_clip=None, log_every=max(1, steps // 20),
                        checkpoint_every=max(1, steps // 10), label=f"generator {settings[0].family}")
    TrainingLoop(run, generator, step, loop, rng).run(resume=run.file(RunDir.CHECKPOINT).exists())
    return generator
