"""Benchmark of the learned block ``deb_marris``: throughput and accuracy by game size.

Throughput (games/s) of the forward pass (no grad) and of forward + backward into
the payoffs (loss = a random linear function of sigma), float32, square
two-player games, for each concept and device (CPU, and CUDA when available).
Accuracy vs the preferred installed exact block (``did_core.plugins.exact_block_for``)
on fresh seeded games, float64: dual gap ``f(alpha) - f(alpha*)``,
``KL(sigma* || sigma)``, mean / 95th-percentile violation in units of eps, and
the exact block's own throughput for comparison.

    python benchmarks/learned_block.py [--sizes 2,4,8,12,16] [--batch 64] [--games 32]
                                       [--threads N] [--out benchmarks/results/learned_block_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from did_core.equilibria import Epsilon, constraints, dual_objective, kl_divergence
from did_core.games import normal_games
from did_core.plugins import exact_block_for, registry
from did_core.runs import OutputRefused, atomic_write_text, output_file
from did_deb_marris import DebMarrisBlock

EPS = 0.05


def _time(fn, repeats: int, device: str) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def throughput(block: DebMarrisBlock, concept: str, size: int, batch: int, device: str, repeats: int
               ) -> tuple[float, float]:
    """(forward games/s, forward+backward games/s)."""
    gen = torch.Generator().manual_seed(size)
    games = normal_games(batch, [size, size], generator=gen, dtype=torch.float32).to(device)
    weight = torch.randn(batch, size, size, generator=gen).to(device)

    def forward() -> None:
        with torch.no_grad():
            block(games, concept=concept, eps=EPS)

    def backward() -> None:
        g = games.clone().requires_grad_(True)
        (block(g, concept=concept, eps=EPS).sigma * weight).sum().backward()

    return batch / _time(forward, repeats, device), batch / _time(backward, repeats, device)


def exact_block(concept: str):
    name = exact_block_for(concept)
    return name, registry("blocks").create(name)


def accuracy(block: DebMarrisBlock, exact, concept: str, size: int, n_games: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(1000 + size)
    games = normal_games(n_games, [size, size], generator=gen)
    start = time.perf_counter()
    eq_x = exact(games, concept=concept, eps=EPS)
    exact_rate = n_games / (time.perf_counter() - start)
    with torch.no_grad():
        eq_b = block(games, concept=concept, eps=EPS)
    mask = torch.ones(n_games, 2, size, dtype=torch.bool)
    cons = constraints(games, mask, concept, Epsilon(EPS))
    flat_b, flat_x = eq_b.sigma.reshape(n_games, -1), eq_x.sigma.reshape(n_games, -1)
    eps_p = cons.eps.reshape(n_games, 2, -1).amax(dim=2)  # [B, N]
    regret = torch.einsum("bkj,bj->bk", cons.gains, flat_b) - cons.eps
    viol_units = (regret.reshape(n_games, 2, -1) / eps_p.unsqueeze(-1)).amax(dim=(1, 2)).clamp_min(0.0)
    gap = dual_objective(eq_b.alpha.reshape(n_games, -1), cons) - dual_objective(eq_x.alpha.reshape(n_games, -1), cons)
    kl = kl_divergence(flat_x, flat_b)
    uniform = torch.full_like(flat_x, 1.0 / flat_x.shape[1])
    return {
        "gap": float(gap.mean()),
        "kl": float(kl.mean()),
        "kl_uniform": float(kl_divergence(flat_x, uniform).mean()),
        "viol_mean": float(viol_units.mean()),
        "viol_p95": float(torch.quantile(viol_units, 0.95)),
        "active": float(eq_x.info["active"].double().mean()),
        "exact_rate": exact_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,8,12,16")
    parser.add_argument("--concepts", default="cce,ce")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--games", type=int, default=32, help="games per size for accuracy")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", help="write the tables as Markdown here")
    args = parser.parse_args()
    if args.out:
        try:  # before the measurement: a missing folder, a device or a run's folder is refused now
            output_file(Path(args.out), force_flag=None)
        except OutputRefused as exc:
            parser.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    block = DebMarrisBlock()
    exact_name, exact = exact_block(args.concepts.split(",")[0])
    lines = [
        "# Learned block `deb_marris`: throughput and accuracy",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: `python benchmarks/learned_block.py "
        f"--sizes {args.sizes} --batch {args.batch} --games {args.games}"
        + (f" --threads {args.threads}" if args.threads else "") + "`.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), CUDA: "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "none") + ".",
        "",
    ]
    for device in devices:
        lines += [f"## Throughput on {device} (games/s, float32, batch {args.batch}, median of {args.repeats})", "",
                  "| concept | size | forward | forward+backward |", "|---|---|---|---|"]
        for concept in args.concepts.split(","):
            for size in sizes:
                fwd, bwd = throughput(block, concept, size, args.batch, device, args.repeats)
                lines.append(f"| {concept} | {size}x{size} | {fwd:.0f} | {bwd:.0f} |")
                print(lines[-1], flush=True)
        lines.append("")
    lines += [f"## Accuracy vs `{exact_name}` (eps_rel = {EPS}, {args.games} fresh normal games per size, float64)",
              "", "Violation in units of the player's eps (target: p95 <= 1). KL(exact‖uniform) for scale.", "",
              "| concept | size | dual gap f-f* | KL(exact‖block) | KL(exact‖uniform) | violation mean / eps "
              "| violation p95 / eps | active rows (exact) | exact block games/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for concept in args.concepts.split(","):
        for size in sizes:
            r = accuracy(block, exact, concept, size, args.games)
            lines.append(f"| {concept} | {size}x{size} | {r['gap']:.2e} | {r['kl']:.4f} | {r['kl_uniform']:.4f} | "
                         f"{r['viol_mean']:.2f} | {r['viol_p95']:.2f} | {r['active']:.1f} | {r['exact_rate']:.1f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text)


if __name__ == "__main__":
    main()
