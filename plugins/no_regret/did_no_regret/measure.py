"""Measure ``no_regret``'s gaps on random games with payoffs scaled to unit range.

    python -m did_no_regret.measure [--rounds 1000 ...] [--players 2 3] [--games 64] [--max-actions 8]
                                    [--seed 0] [--learner hedge] [--concept cce] [--threads 1]

prints, per player count and rounds, the mean and largest gap (of ``--concept``), the
mean CCE gap and the forward time (no gradient) over random games whose players have
2..max-actions actions each (drawn per game; the batch is padded and masked), payoffs
i.i.d. normal mapped affinely onto [0, 1] per player. A gap below 0 means that every
deviation loses (e.g. play settled on a strict pure equilibrium).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from did_core.games import joint_mask, padded_random_games
from did_core.plugins import get_concept

__all__ = ["unit_range", "random_unit_games", "main"]


def unit_range(games: Tensor, mask: Tensor) -> Tensor:
    """Each player's payoffs mapped affinely onto ``[0, 1]`` over its real joint actions (padded entries 0),
    ``[B, N, A_1..A_N]``."""
    real = joint_mask(mask, games.shape[2:]).unsqueeze(1).expand_as(games).flatten(2)
    flat = games.flatten(2)
    low = torch.where(real, flat, torch.full_like(flat, float("inf"))).amin(dim=2, keepdim=True)
    high = torch.where(real, flat, torch.full_like(flat, float("-inf"))).amax(dim=2, keepdim=True)
    return ((flat - low) / (high - low) * real).reshape(games.shape)


def random_unit_games(batch: int, n_players: int, max_actions: int, seed: int, min_actions: int = 2
                      ) -> tuple[Tensor, Tensor]:
    """``(games [B, N, A_max..], mask [B, N, A_max])``: sizes ``U{min..max}`` per player, unit-range payoffs."""
    gen = torch.Generator().manual_seed(seed)
    games, mask = padded_random_games(batch, n_players, min_actions, max_actions, generator=gen, embedded=False)
    return unit_range(games, mask), mask


def main(argv: Sequence[str] | None = None) -> int:
    """Print the gap table (see the module docstring)."""
    from did_no_regret.block import NoRegretBlock

    p = argparse.ArgumentParser(prog="python -m did_no_regret.measure", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, nargs="+", default=[1000])
    p.add_argument("--games", type=int, default=64)
    p.add_argument("--max-actions", type=int, default=8)
    p.add_argument("--players", type=int, nargs="+", default=[2, 3])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learner", default="hedge")
    p.add_argument("--concept", default="cce")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"no_regret, learner {args.learner}, concept {args.concept}, {args.games} games per row, "
          f"2..{args.max_actions} actions per player, payoffs in [0, 1], seed {args.seed}")
    concept = get_concept(args.concept)  # also loads the plugins before timing
    print("| players | rounds | mean gap | max gap | mean CCE gap | seconds |")
    print("|---|---|---|---|---|---|")
    for n in args.players:
        games, mask = random_unit_games(args.games, n, args.max_actions, args.seed + n)
        for rounds in args.rounds:
            start = time.perf_counter()
            eq = NoRegretBlock(rounds=rounds, learner=args.learner)(games, mask, concept=concept)
            gap, cce = eq.info["gap"], eq.info["cce_gap"]
            print(f"| {n} | {rounds} | {gap.mean():.4f} | {gap.max():.4f} | {cce.mean():.4f} "
                  f"| {time.perf_counter() - start:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
