"""Unsupervised pretraining of the learned block and its validation against an exact block.

Loss (docs/mathematics.md, section 3.4): the dual objective ``f(alpha)`` of the network's answer,
averaged over a batch of random embedded two-player games whose action counts
are drawn per game and per player from ``U{2..max_actions}`` (padded to
``max_actions`` with masks). No solved games are needed.

Validation uses a fixed seeded set of square games per size, solved once by the
preferred exact block for the concept (``did_core.plugins.exact_block_for``). Per size:
the dual gap ``f(alpha) - f(alpha*)``, ``KL(sigma* || sigma)``, mean and 95th
percentile violation (absolute, on embedded games, and in units of eps) and the
number of active constraints of the exact solution and of the network.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from did_core.equilibria import Epsilon, constraints, dual_objective, joint_from_dual, kl_divergence, violation
from did_core.games import embed, embedded_games, joint_mask, normal_games
from did_core.plugins import create, exact_block_for, get_concept
from did_deb_marris.network import DebMarrisNet, NetConfig

__all__ = ["PretrainConfig", "ValidationSet", "exact_block", "validate", "format_table", "pretrain_step"]


@dataclass
class PretrainConfig:
    """Options of ``did deb train`` (plain data, written to the run directory)."""

    concept: str = "cce"
    max_actions: int = 16
    min_actions: int = 2
    n_players: int = 2
    eps_rel: float = 0.05
    steps: int = 20000
    batch_size: int = 64
    buckets: int = 4
    lr: float = 1e-3
    warmup_steps: int = 200
    final_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    validate_every: int = 500
    val_sizes: list[int] = field(default_factory=lambda: [2, 3, 4, 6, 8, 12, 16])
    val_games: int = 32
    val_seed: int = 12345
    max_minutes: float | None = None
    threads: int | None = None
    init_from: str | None = None
    net: dict[str, Any] = field(default_factory=lambda: NetConfig().to_dict())

    def net_config(self) -> NetConfig:
        return NetConfig(**{**self.net, "concept": self.concept})

    def validate(self) -> "PretrainConfig":
        """``ValueError`` naming the first option out of range (before anything is written)."""
        positive = {"steps": self.steps, "batch_size": self.batch_size, "buckets": self.buckets,
                    "validate_every": self.validate_every, "val_games": self.val_games, "lr": self.lr,
                    "eps": self.eps_rel, "max_minutes": self.max_minutes, "threads": self.threads}
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if not 2 <= self.min_actions <= self.max_actions:
            raise ValueError(f"--max-actions must be at least {max(2, self.min_actions)}, got {self.max_actions}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exact_block(concept: str) -> Any:
    """The exact block used for validation: the preferred installed exact block for ``concept``."""
    return create("blocks", exact_block_for(concept))


def random_batch(cfg: PretrainConfig, rng: torch.Generator, dtype: torch.dtype = torch.float32
                 ) -> list[tuple[Tensor, Tensor]]:
    """A training batch as size buckets: ``[(games [b, N, m..m], mask [b, N, m]), ...]``.

    Each game's action counts are drawn per player from ``U{min..max_actions}``
    (as ``padded_random_games`` does); games are sorted by their largest count and
    split into ``cfg.buckets`` groups, each padded only to its own largest size:
    the same distribution as padding everything to ``max_actions``, for less compute.
    """
    counts = torch.randint(cfg.min_actions, cfg.max_actions + 1, (cfg.batch_size, cfg.n_players), generator=rng)
    order = counts.max(dim=1).values.argsort()
    out = []
    for idx in order.chunk(max(1, cfg.buckets)):
        c = counts[idx]
        m = int(c.max())
        mask = torch.arange(m).view(1, 1, -1) < c.unsqueeze(-1)
        games = normal_games(len(idx), [m] * cfg.n_players, generator=rng, dtype=dtype)
        games = games * joint_mask(mask, [m] * cfg.n_players).unsqueeze(1)
        games, mask = games.to(cfg.device), mask.to(cfg.device)
        out.append((embed(games, mask), mask))
    return out


def pretrain_step(net: DebMarrisNet, cfg: PretrainConfig, rng: torch.Generator, dtype: torch.dtype = torch.float32
                  ) -> tuple[Tensor, dict[str, float]]:
    """One batch: random embedded games, the network's duals, mean ``f`` (backward per bucket).

    Calls ``backward`` itself (bucket by bucket, freeing each graph) and returns the
    detached loss and scalars.
    """
    total, viol_sum, alpha_sum = 0.0, 0.0, 0.0
    for games, mask in random_batch(cfg, rng, dtype):
        cons = constraints(games, mask, net.concept, Epsilon(cfg.eps_rel))
        alpha = net(games, mask).reshape(games.shape[0], -1)
        f = dual_objective(alpha, cons)
        (f.sum() / cfg.batch_size).backward()
        with torch.no_grad():
            total += float(f.sum())
            viol_sum += float(violation(joint_from_dual(alpha, cons), cons).sum())
            alpha_sum += float(alpha.sum())
    n = cfg.batch_size
    return torch.tensor(total / n), {"loss": total / n, "violation": viol_sum / n, "alpha_mean": alpha_sum / n}


class ValidationSet:
    """Fixed seeded square games per size with their exact solutions (computed once)."""

    def __init__(self, concept: str, sizes: list[int], games_per_size: int, seed: int, eps_rel: float,
                 n_players: int = 2) -> None:
        self.concept, self.eps_rel = get_concept(concept), eps_rel
        gen = torch.Generator().manual_seed(seed)
        block = exact_block(concept)
        self.block = block
        self.items: list[dict[str, Tensor]] = []
        for size in sizes:
            games = embedded_games(games_per_size, [size] * n_players, generator=gen)
            mask = torch.ones(games_per_size, n_players, size, dtype=torch.bool)
            eq = block(games, mask, concept=self.concept, eps=eps_rel)
            cons = constraints(games, mask, self.concept, Epsilon(eps_rel))
            alpha = eq.alpha.reshape(games_per_size, -1)
            self.items.append({"size": size, "games": games, "mask": mask, "alpha": alpha,
                               "sigma": eq.sigma.reshape(games_per_size, -1),
                               "f": dual_objective(alpha, cons),
                               "active": eq.info["active"].double()})


@torch.no_grad()
def validate(net: DebMarrisNet, vset: ValidationSet, device: str = "cpu") -> list[dict[str, float]]:
    """Per-size accuracy rows of ``net`` (float64) on ``vset``."""
    was_training = net.training
    net.eval()
    rows = []
    param = next(net.parameters())
    for item in vset.items:
        games, mask = item["games"].to(device, param.dtype), item["mask"].to(device)
        alpha = net(games, mask).double().cpu().reshape(games.shape[0], -1)
        cons = constraints(item["games"], item["mask"], vset.concept, Epsilon(vset.eps_rel))
        sigma = joint_from_dual(alpha, cons)
        viol = violation(sigma, cons)
        gap = dual_objective(alpha, cons) - item["f"]
        kl = kl_divergence(item["sigma"], sigma)
        rows.append({
            "size": item["size"],
            "dual_gap": float(gap.mean()),
            "kl": float(kl.mean()),
            "kl_p95": float(torch.quantile(kl, 0.95)),
            "viol_mean": float(viol.mean()),
            "viol_p95": float(torch.quantile(viol, 0.95)),
            "viol_p95_eps": float(torch.quantile(viol, 0.95)) / vset.eps_rel,
            "active_exact": float(item["active"].mean()),
            "active_block": float(((alpha > 1e-3) & cons.rows).sum(1).double().mean()),
        })
    net.train(was_training)
    return rows


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Scalars for TensorBoard: per-size KL / p95 violation / gap and their worst values."""
    out: dict[str, float] = {}
    for r in rows:
        s = int(r["size"])
        out[f"kl/{s}"] = r["kl"]
        out[f"viol_p95_eps/{s}"] = r["viol_p95_eps"]
        out[f"dual_gap/{s}"] = r["dual_gap"]
    out["kl_max"] = max(r["kl"] for r in rows)
    out["viol_p95_eps_max"] = max(r["viol_p95_eps"] for r in rows)
    out["dual_gap_mean"] = sum(r["dual_gap"] for r in rows) / len(rows)
    return out


def format_table(rows: list[dict[str, float]], eps_rel: float) -> str:
    """A Markdown table of validation rows."""
    head = ("| size | dual gap f-f* | KL(exact‖block) mean | KL p95 | violation mean | violation p95 "
            "| p95 / eps | active (exact) | active (block, alpha>1e-3) |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = [
        f"| {int(r['size'])}x{int(r['size'])} | {r['dual_gap']:.2e} | {r['kl']:.4f} | {r['kl_p95']:.4f} | "
        f"{r['viol_mean']:.4f} | {r['viol_p95']:.4f} | {r['viol_p95_eps']:.2f} | {r['active_exact']:.1f} | "
        f"{r['active_block']:.1f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + f"\n\n(eps_rel = {eps_rel}: on embedded games eps_p = {eps_rel}.)\n"


class Deadline:
    """Wall-clock budget: ``expired()`` once ``minutes`` have passed (never when ``None``)."""

    def __init__(self, minutes: float | None) -> None:
        self.end = None if minutes is None else time.monotonic() + 60.0 * minutes

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def remaining(self) -> float:
        return math.inf if self.end is None else self.end - time.monotonic()
