"""The dynamic mechanism design settings: their MDPs, type distributions, rewards and objectives.

* ``sales-sym`` / ``sales-asym`` (n agents, m identical items offered one per round): state ``(t, a_1..a_m)``,
  ``t = 0..m-1`` the round, ``a_k`` the recipient of item ``k`` (0 nobody, -1 not yet offered); action ``0..n``
  gives this round's item to that agent (0 withholds it). Agent ``i`` gets ``v_i`` for its first item (unit
  demand). ``v_i ~ U[0, 1]`` (sym) or ``U[0, 1/i]`` (asym). Counterfactual: ``v_i = 0``. Objective: revenue.
* ``makespan-sym`` / ``makespan-asym`` (n workers, m tasks arriving one per round): state ``(t, a_1..a_m)``,
  ``t = 1..m`` the task arriving now, ``a_k`` the worker of task ``k`` (-1 not yet); action ``j`` gives task ``t``
  to worker ``j + 1``, whose reward is ``-theta_{j+1, t}``. ``theta ~ U[0, 3]`` (sym) or ``U[0, 3 i]`` for
  worker ``i`` (asym). Counterfactual: ``theta_{i, .} = 5``. Objective: the makespan of :func:`makespan`.
* ``gridworld`` (n agents, m x m grid, discount 0.9): the mechanism moves up/down/left/right on a torus, from
  cell ``(1, 1)``; agent ``i`` values one goal cell (uniform among the others) at ``r_i ~ U[0, 1]``, received
  whenever a move enters it. Counterfactual: ``r_i = 0``. Objective: revenue.

States are numbered as the published code enumerates them (breadth first from the start; the grid column by
column), and :attr:`Setting.mdp` carries each state's label as the shipped files write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from did_core.affine_maximizer import AMAOutcome
from did_core.files import shown
from did_core.policy import MDP, DiscountedMDP, TreeMDP

__all__ = ["SETTINGS", "Setting", "make_setting", "makespan", "GRID_DISCOUNT", "CELLS"]

SETTINGS = ("sales-sym", "sales-asym", "makespan-sym", "makespan-asym", "gridworld")

#: The discount of the gridworld (as published).
GRID_DISCOUNT = 0.9
#: The counterfactual disutility of a scheduling worker (as published: it can still be assigned).
SCHEDULING_SENTINEL = 5.0

#: The published cells: setting -> (n, m) pairs.
CELLS: dict[str, tuple[tuple[int, int], ...]] = {
    "sales-sym": ((2, 2), (3, 2), (4, 2), (5, 2), (2, 3), (3, 3), (4, 3), (5, 3)),
    "sales-asym": ((2, 2), (3, 2), (4, 2), (5, 2), (2, 3), (3, 3), (4, 3), (5, 3)),
    "makespan-sym": ((2, 4), (2, 5), (3, 4), (3, 5)),
    "makespan-asym": ((2, 4), (2, 5), (3, 4), (3, 5)),
    "gridworld": ((2, 3), (3, 3), (4, 3), (5, 3), (2, 4)),
}


def _tree(start: tuple[int, ...], actions: range, step, last: int) -> tuple[TreeMDP, list[tuple[int, ...]]]:
    """The breadth-first tree from ``start``: ``step(state, action)`` is the child; states with ``state[0] ==
    last`` have none."""
    labels, children = [start], []
    for state in labels:  # grows while it is read: breadth first
        row = []
        for action in actions:
            if state[0] == last:
                row.append(-1)
            else:
                row.append(len(labels))
                labels.append(step(state, action))
        children.append(row)
    return TreeMDP(torch.tensor(children, dtype=torch.long), labels=tuple(labels)), labels


@dataclass(frozen=True)
class Setting:
    """One cell: ``name`` (one of :data:`SETTINGS`), ``n`` agents, ``m`` items / tasks / grid side.

    ``mdp``: its MDP; ``maximize``: whether the objective is revenue (else makespan, minimised).
    """

    name: str
    n: int
    m: int
    #: per-agent upper ends of the uniform type distributions (default: the setting's own, above).
    upper: tuple[float, ...] | None = None
    mdp: MDP = field(init=False, repr=False)
    #: [N, S, A]: which agent an action pays (sales: its first item; scheduling: the task; grid: entering its goal).
    _pays: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in SETTINGS:
            raise ValueError(f"unknown setting {self.name!r}; known: {', '.join(SETTINGS)}")
        limits = {"sales": (2, 8, 1, 4), "makespan": (2, 5, 1, 6), "gridworld": (1, 8, 2, 6)}[self.family]
        if not (limits[0] <= self.n <= limits[1] and limits[2] <= self.m <= limits[3]):
            raise ValueError(f"{self.name} supports n in {limits[0]}..{limits[1]} and m in {limits[2]}..{limits[3]}, "
                             f"got n={self.n}, m={self.m}")
        if self.upper is not None and (len(self.upper) != self.n or not all(
                isinstance(u, float) and 0.0 < u < 1e6 for u in self.upper)):
            raise ValueError(f"{self.name}: upper must be {self.n} finite numbers in (0, 1e6)")
        builder = {"sales": self._sales, "makespan": self._scheduling, "gridworld": self._grid}[self.family]
        mdp, pays = builder()
        object.__setattr__(self, "mdp", mdp)
        object.__setattr__(self, "_pays", pays)

    @property
    def family(self) -> str:
        return self.name.split("-")[0]

    @property
    def maximize(self) -> bool:
        return self.family != "makespan"

    @property
    def symmetric(self) -> bool:
        return self.name != "sales-asym" and self.name != "makespan-asym"

    @property
    def bounds(self) -> Tensor:
        """``[N]``: the upper end of each agent's uniform types (values, disutilities per task, goal values)."""
        if self.upper is not None:
            return torch.tensor(self.upper, dtype=torch.float64)
        rank = torch.arange(1, self.n + 1, dtype=torch.float64)
        return {"sales-sym": torch.ones(self.n, dtype=torch.float64), "sales-asym": 1.0 / rank,
                "makespan-sym": torch.full((self.n,), 3.0, dtype=torch.float64), "makespan-asym": 3.0 * rank,
                "gridworld": torch.ones(self.n, dtype=torch.float64)}[self.name]

    @property
    def key(self) -> str:
        """``{setting}_n{n}_m{m}``: the cell's file stem."""
        return f"{self.name}_n{self.n}_m{self.m}"

    # -- the MDPs -------------------------------------------------------------------------------------------------
    def _sales(self) -> tuple[TreeMDP, Tensor]:
        def step(state: tuple[int, ...], action: int) -> tuple[int, ...]:
            new = list(state)
            new[0] += 1
            new[new[0]] = action
            return tuple(new)

        mdp, labels = _tree((0,) + (-1,) * self.m, range(self.n + 1), step, self.m - 1)
        pays = torch.zeros(self.n, len(labels), self.n + 1, dtype=torch.float64)
        for s, state in enumerate(labels):
            for agent in range(1, self.n + 1):
                if agent not in state[1:]:
                    pays[agent - 1, s, agent] = 1.0
        return mdp, pays

    def _scheduling(self) -> tuple[TreeMDP, Tensor]:
        def step(state: tuple[int, ...], action: int) -> tuple[int, ...]:
            new = list(state)
            new[new[0]] = action + 1
            new[0] += 1
            return tuple(new)

        mdp, labels = _tree((1,) + (-1,) * self.m, range(self.n), step, self.m)
        pays = torch.zeros(self.n, len(labels), self.n, dtype=torch.float64)
        for worker in range(self.n):
            pays[worker, :, worker] = 1.0
        return mdp, pays

    def _grid(self) -> tuple[DiscountedMDP, Tensor]:
        side = self.m
        labels = [(x, y) for y in range(1, side + 1) for x in range(1, side + 1)]  # column-major, as published
        index = {cell: i for i, cell in enumerate(labels)}
        transitions = torch.zeros(len(labels), 4, len(labels), dtype=torch.float64)
        for (x, y), s in index.items():
            moves = ((x, side if y == 1 else y - 1), (x, 1 if y == side else y + 1),  # up, down
                     (side if x == 1 else x - 1, y), (1 if x == side else x + 1, y))  # left, right
            for a, cell in enumerate(moves):
                transitions[s, a, index[cell]] = 1.0
        start = torch.zeros(len(labels), dtype=torch.float64)
        start[0] = 1.0
        mdp = DiscountedMDP(transitions, start, GRID_DISCOUNT, labels=tuple(labels))
        return mdp, transitions  # [S, A, S']: the cell each move enters

    # -- types, rewards, objectives -------------------------------------------------------------------------------
    def sample_types(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` type profiles: sales ``[B, N]`` values; scheduling ``[B, N, m]`` disutilities; grid
        ``[B, N, S]`` (each agent's value per cell: one nonzero)."""
        if self.family == "sales":
            return torch.rand(count, self.n, generator=generator, dtype=torch.float64) * self.bounds
        if self.family == "makespan":
            return torch.rand(count, self.n, self.m, generator=generator, dtype=torch.float64) * self.bounds[:, None]
        cells = self.m * self.m
        goal = 1 + torch.randint(0, cells - 1, (count, self.n), generator=generator)  # never the start cell 0
        value = torch.rand(count, self.n, generator=generator, dtype=torch.float64) * self.bounds
        return torch.zeros(count, self.n, cells, dtype=torch.float64).scatter(-1, goal[..., None], value[..., None])

    def check_types(self, types: Tensor) -> None:
        """Refuse a type tensor of the wrong shape or with non-finite entries (a one-line ``ValueError``)."""
        shape = {"sales": (self.n,), "makespan": (self.n, self.m), "gridworld": (self.n, self.m * self.m)}[self.family]
        if types.dim() != 1 + len(shape) or tuple(types.shape[1:]) != shape:
            raise ValueError(f"{self.key}: type profiles must be [B, {', '.join(map(str, shape))}], "
                             f"got {list(types.shape)}")
        if not bool(torch.isfinite(types).all()):
            raise ValueError(f"{self.key}: type profiles must be finite")

    def rewards(self, types: Tensor) -> Tensor:
        """Each agent's reward per state-action ``[B, N, S, A]`` for type profiles ``types``."""
        if self.family == "sales":
            return types[:, :, None, None] * self._pays
        if self.family == "makespan":
            task = torch.tensor([label[0] - 1 for label in self.mdp.labels])  # [S]: the task arriving in s
            return -types[:, :, task, None] * self._pays
        return torch.einsum("bnt,sat->bnsa", types, self._pays)

    def counterfactual_rewards(self, types: Tensor) -> Tensor:
        """Agent ``i``'s rewards ``[B, N, S, A]`` after its type is replaced by the counterfactual."""
        if self.family == "makespan":
            return (-SCHEDULING_SENTINEL * self._pays).expand(types.shape[0], -1, -1, -1)
        return torch.zeros(types.shape[0], self.n, self.mdp.num_states, self.mdp.num_actions, dtype=types.dtype)

    def objective(self, outcome: AMAOutcome, types: Tensor) -> Tensor:
        """The per-profile objective ``[B]``: revenue, or the expected makespan under the chosen policy."""
        if self.maximize:
            return outcome.revenue
        return (outcome.occupancy * self.makespan_costs(types)).sum((-2, -1))

    def makespan_costs(self, types: Tensor) -> Tensor:
        """``[B, S, A]``: the makespan of the schedule that ends with action ``a`` in last-round state ``s``
        (zero elsewhere), so the expected makespan is ``sum occupancy * costs``."""
        last = [s for s, label in enumerate(self.mdp.labels) if label[0] == self.m]
        schedules = torch.tensor([list(self.mdp.labels[s][1:self.m]) + [a + 1] for s in last
                                  for a in range(self.n)]) - 1  # [L, m] workers, 0-based
        costs = torch.zeros(types.shape[0], self.mdp.num_states, self.n, dtype=types.dtype)
        leaf = makespan(types, schedules).reshape(types.shape[0], len(last), self.n)
        return costs.index_copy(1, torch.tensor(last), leaf)


def makespan(types: Tensor, schedules: Tensor) -> Tensor:
    """The makespan ``[B, L]`` of each schedule ``[L, m]`` (task k's worker, 0-based) under ``types [B, N, m]``.

    As the published code computes it: ``rem = 0`` per worker; for each task in order every worker with
    ``rem > 0`` does one unit (``rem -= 1``, which may go below zero and stays as credit), then the task's
    worker gets ``rem += theta``; the makespan is ``max(0, max_i rem_i)``.
    """
    batch, workers, tasks = types.shape
    rem = types.new_zeros(batch, schedules.shape[0], workers)
    for k in range(tasks):
        rem = torch.where(rem > 0, rem - 1.0, rem)
        worker = schedules[:, k]
        rem = rem.index_put((torch.arange(batch)[:, None], torch.arange(schedules.shape[0])[None], worker[None]),
                            types[:, worker, k], accumulate=True)
    return rem.max(-1).values.clamp_min(0.0)


def make_setting(name: str, n: int, m: int, upper: tuple[float, ...] | None = None) -> Setting:
    """The cell ``name`` with ``n`` agents and size ``m`` (a one-line ``ValueError`` when unsupported), its types
    uniform up to ``upper`` (per agent) where given."""
    if not isinstance(name, str) or type(n) is not int or type(m) is not int:
        raise ValueError(f"a cell is a setting name and two integers, got {shown(name)}, {shown(n)}, {shown(m)}")
    return Setting(name, n, m, upper)


def all_cells() -> list[tuple[str, int, int]]:
    """Every published cell, in the published tables' order."""
    return [(name, n, m) for name in SETTINGS for n, m in CELLS[name]]
