"""``did design cournot MARKET.json``: read one market, design its emission taxes, show them by the firms' names.

File format (a JSON object; ``description`` and ``notes`` are free text), e.g. ``market.json`` beside this
module::

    {"firms":      ["Steelworks", "Cement"],   # optional, N names (2 or 3 firms)
     "quantities": [[0, 0.25, 0.5, 0.75],      # each firm's quantity levels: at least 2, distinct, >= 0
                    [0, 0.375, 0.75]],
     "demand": 1.5,                            # the price is demand - total quantity
     "costs": [0.2, 0.3],                      # per unit produced
     "emissions": [0.9, 0.2],                  # per unit produced
     "damage": 1.5}                            # to society, per unit of emissions

The designed taxes come from the generator the task ships (``shipped/cce``) or, with ``did design --optimise``,
from :func:`optimise_rates`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.blocks import EquilibriumBlock
from did_core.concepts import Concept
from did_core.console import joint_lines
from did_core.equilibria import Epsilon
from did_core.instance_files import InstanceError, array, check_fields, load_instance, names, padded
from did_core.tasks import Context, InstanceFormat, NamedContext, numbered
from did_example_task.market import WelfareObjective, market

__all__ = ["MarketInstances", "optimise_rates"]

_KEYS = {"firms", "quantities", "demand", "costs", "emissions", "damage"}
#: The most joint actions of a market read from a file.
MAX_JOINT_ACTIONS = 4096


def _market(decoded: Any) -> NamedContext:
    """Validate a decoded JSON object and build its context (see the module docstring)."""
    data = check_fields(decoded, _KEYS, _KEYS - {"firms"})
    levels = data["quantities"]
    if not isinstance(levels, list) or not 2 <= len(levels) <= 3:
        raise InstanceError("'quantities' must be a list of each firm's quantity levels (2 or 3 firms)")
    rows = []
    for i, row in enumerate(levels):
        if not isinstance(row, list) or len(row) < 2:
            raise InstanceError(f"'quantities[{i}]' must be a list of at least 2 quantity levels")
        rows.append(array(row, f"quantities[{i}]", (len(row),)))
        if (rows[-1] < 0).any() or len(set(row)) < len(row):
            raise InstanceError(f"'quantities[{i}]' must hold distinct quantities >= 0")
    counts = [len(row) for row in rows]
    if math.prod(counts) > MAX_JOINT_ACTIONS:
        raise InstanceError(f"the firms' quantity levels give {math.prod(counts)} joint actions (at most "
                            f"{MAX_JOINT_ACTIONS})")
    n, m = len(rows), max(counts)
    firms = names(data["firms"], "firms", "firm") if "firms" in data else numbered("firm", n)
    if len(firms) != n:
        raise InstanceError(f"'firms' names {len(firms)} firms, but 'quantities' has {n}")
    dtype = torch.get_default_dtype()  # as the sampler's: a trained generator takes this float type
    context = {"quantities": torch.stack([padded(row, (m,)) for row in rows]).unsqueeze(0).to(dtype),
               "mask": (torch.arange(m) < torch.tensor(counts).unsqueeze(1)).unsqueeze(0),
               "demand": array(data["demand"], "demand", ()).reshape(1).to(dtype),
               "costs": array(data["costs"], "costs", (n,)).unsqueeze(0).to(dtype),
               "emissions": array(data["emissions"], "emissions", (n,)).unsqueeze(0).to(dtype),
               "damage": array(data["damage"], "damage", ()).reshape(1).to(dtype)}
    context["profits"], context["welfare"] = market(context)
    return NamedContext(context, firms, [[f"q={float(q):g}" for q in row] for row in rows])


def optimise_rates(context: Context, block: EquilibriumBlock, concept: Concept, eps: Epsilon, steps: int,
                   lr: float) -> Tensor:
    """Tax rates ``x [B, N]`` by Adam through ``block`` from no tax, ``steps`` steps of rate ``lr`` on the
    objective's loss; per context the rates of the best welfare seen (no tax included, so never worse than none
    under ``block``)."""
    objective = WelfareObjective()
    context = {key: value.double() if value.is_floating_point() else value for key, value in context.items()}
    rates = torch.zeros_like(context["costs"]).requires_grad_(True)
    optimiser = torch.optim.Adam([rates], lr=lr)
    best, best_value = rates.detach().clone(), torch.full_like(context["demand"], -torch.inf)
    for step in range(steps + 1):
        games, mask = objective.induce(context, rates)
        eq = block(games, mask, concept=concept, eps=eps)
        value = objective.value(context, rates, eq).detach()
        better = value > best_value
        best = torch.where(better.unsqueeze(1), rates.detach(), best)
        best_value = torch.where(better, value, best_value)
        if step < steps:
            optimiser.zero_grad()
            objective.loss(context, rates, eq, 1.0)[0].backward()
            optimiser.step()
    return best


class MarketInstances(InstanceFormat):
    """Market JSON files for ``did design cournot``."""

    noun = "emission taxes"
    baseline = "no tax"
    value_name = "expected welfare"
    method = "gradient ascent (Adam) on the tax rates from no tax"
    player_word = "firm"
    action_word = "level"
    optimiser = staticmethod(optimise_rates)
    example = Path(__file__).parent / "market.json"

    def load(self, path: Path) -> Context:
        return load_instance(Path(path), _market)

    def describe(self, context: Context, intervention: Tensor) -> list[str]:
        """Each firm's tax rate (a negative one is a subsidy), per unit of emissions and per unit produced."""
        firms, _ = self.names(context)
        rates, emissions = intervention[0].double(), context["emissions"][0].double()
        return [f"{firm}: {float(t):+.4f} per unit of emissions ({float(t * e):+.4f} per unit produced)"
                for firm, t, e in zip(firms, rates, emissions)]

    def describe_joint(self, context: Context, sigma: Tensor) -> list[str]:
        """The joint by the firms' quantities."""
        return joint_lines(*self.names(context), sigma)
