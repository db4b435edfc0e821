"""Exact eps-ME (C)CE blocks side by side: cvxpy + ECOS, cvxpylayers and the batched Newton block.

One command, one table, every ratio measured in the same run::

    python benchmarks/exact_block.py                      # the full table (several minutes)
    python benchmarks/exact_block.py --quick              # a smoke subset (about a minute)
    python benchmarks/exact_block.py --sizes 8x8,16x16 --concepts ce --out table.md

Rows are games (``8x8`` = two players with 8 actions, ``3x3x3`` = three players) and
concepts; the games are seeded embedded normal games, eps = 0.05 relative (docs/mathematics.md, 3.1).
Times are milliseconds per game (median over ``--repeats``), for the forward pass and
for forward + backward of a scalar loss of ``sigma``:

* ``ECOS rebuilt``: ``did_exact_cvx.solve_game`` without a cached program: the parametrised
  cvxpy problem built, compiled and solved per game (+ implicit differentiation,
  ``did_core.implicit``, for the backward);
* ``ECOS reused``: the ``exact_cvx`` block, one parametrised cvxpy problem per real shape
  re-solved per game (``did_exact_cvx.ecos_block``; compiled once, outside the timing);
* ``cvxpylayers``: ``CvxpyLayer`` (diffcp + SCS), if installed; skipped otherwise;
* ``Newton``: ``exact_newton`` on the whole batch at once (``--batch`` games).

Accuracy columns: max |sigma difference| between Newton and ECOS over the ECOS games,
the Newton block's worst violation and KKT residual, its largest iteration count and
the number of games that did not converge.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from did_core.equilibria import Epsilon, constraints
from did_core.games import embedded_games, full_mask
from did_core.implicit import implicit_vjp
from did_core.runs import OutputRefused, atomic_write_text, output_file
from did_exact_cvx import EcosBlock, NewtonBlock, solve_game
from did_exact_cvx.newton import tune_cpu_allocator

FULL_SIZES = ("2x2", "4x4", "8x8", "12x12", "16x16", "2x2x2", "3x3x3", "4x4x4", "6x6x6")
QUICK_SIZES = ("2x2", "8x8", "2x2x2")


@dataclass
class Row:
    """One line of the table; times in ms per game (``nan`` = not run)."""

    game: str
    concept: str
    rows: int
    times: dict[str, float] = field(default_factory=dict)
    sigma_diff: float = math.nan
    violation: float = math.nan
    kkt: float = math.nan
    iterations: int = 0
    failed: int = 0
    layers_diff: float = math.nan
    ecos_fallbacks: int = 0


def parse_sizes(text: str) -> list[tuple[int, ...]]:
    """``"8x8,3x3x3"`` -> ``[(8, 8), (3, 3, 3)]``."""
    out = []
    for item in text.split(","):
        parts = tuple(int(x) for x in item.lower().split("x") if x)
        if len(parts) < 2 or min(parts) < 1:
            raise SystemExit(f"bad size {item!r}: use e.g. 8x8 or 3x3x3")
        out.append(parts)
    return out


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loss_weights(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A fixed random cotangent for the scalar loss ``sum(w * sigma)``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)


def make_layer(k: int, j: int):  # type: ignore[no-untyped-def]
    """A ``CvxpyLayer`` of the eps-ME program with dense parameters ``(D [K, J], eps [K])``."""
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    gains, eps, sigma = cp.Parameter((k, j)), cp.Parameter(k), cp.Variable(j)
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), [gains @ sigma <= eps, cp.sum(sigma) == 1])
    return CvxpyLayer(problem, parameters=[gains, eps], variables=[sigma])


def have_cvxpylayers() -> bool:
    """Whether ``cvxpylayers.torch`` imports."""
    try:
        import cvxpylayers.torch  # noqa: F401
    except Exception:  # noqa: BLE001 -- any import failure means "skip"
        return False
    return True


def bench_case(sizes: tuple[int, ...], concept: str, args: argparse.Namespace, layers_ok: bool) -> Row:
    """Every method on one (size, concept)."""
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(zlib.crc32(f"{sizes}{concept}".encode()))
    games = embedded_games(args.batch, sizes, generator=gen)  # float64, CPU
    eps = Epsilon(args.eps)
    mask = full_mask(games)
    cons = constraints(games, mask, concept, eps)  # type: ignore[arg-type]
    row = Row("x".join(map(str, sizes)), concept, int(cons.rows[0].sum()))
    weights = loss_weights(cons.joint.shape, torch.device("cpu"))
    n_ecos = min(args.ecos_games, args.batch)

    # Newton, the whole batch at once.
    block = NewtonBlock()
    g_dev, w_dev = games.to(device), weights.to(device)

    def newton_fwd() -> object:
        return block(g_dev, concept=concept, eps=eps)

    def newton_fwd_bwd() -> None:
        g = g_dev.clone().requires_grad_(True)
        eq = block(g, concept=concept, eps=eps)
        (eq.sigma.reshape(args.batch, -1) * w_dev).sum().backward()

    eq = newton_fwd()  # warm-up, and the accuracy numbers
    newton_fwd_bwd()
    row.times["newton_fwd"] = median_time(newton_fwd, args.repeats, sync) / args.batch
    row.times["newton_fb"] = median_time(newton_fwd_bwd, args.repeats, sync) / args.batch
    sigma_newton = eq.sigma.reshape(args.batch, -1).cpu()
    row.violation = float(eq.info["violation"].max())
    row.kkt = float(eq.info["kkt"].max())
    row.iterations = int(eq.info["iterations"].max())
    row.failed = int((~eq.info["converged"]).sum())

    # ECOS through the exact_cvx block: one parametrised problem per real shape, re-solved per game.
    ecos = EcosBlock()
    sub = games[:n_ecos]

    def ecos_fwd() -> object:
        return ecos(sub, concept=concept, eps=eps)

    def ecos_fwd_bwd() -> None:
        g = sub.clone().requires_grad_(True)
        out = ecos(g, concept=concept, eps=eps)
        (out.sigma.reshape(n_ecos, -1) * weights[:n_ecos]).sum().backward()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        eq_ecos = ecos_fwd()  # also compiles the programs, outside the timing
    row.ecos_fallbacks = sum("eps-ME solve" in str(w.message) for w in caught)
    row.times["reused_fwd"] = median_time(ecos_fwd, args.repeats, lambda: None) / n_ecos
    row.times["reused_fb"] = median_time(ecos_fwd_bwd, args.repeats, lambda: None) / n_ecos
    row.sigma_diff = float((eq_ecos.sigma.reshape(n_ecos, -1) - sigma_newton[:n_ecos]).abs().max())

    # ECOS with a cvxpy problem built per game (solve_game without a cached program).
    real = [(cons.gains[b][cons.rows[b]][:, cons.joint[b]].numpy(), cons.eps[b][cons.rows[b]].numpy())
            for b in range(n_ecos)]
    alphas = np.zeros((n_ecos, cons.rows.shape[1]))

    def rebuilt_fwd() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # fallbacks are counted on the block above
            for b in range(n_ecos):
                _, alphas[b, cons.rows[b].numpy()], _ = solve_game(*real[b])

    def implicit_bwd() -> None:
        alpha = torch.as_tensor(alphas)
        implicit_vjp(sub, mask[:n_ecos], concept, eps, alpha, weights[:n_ecos])  # type: ignore[arg-type]

    row.times["ecos_fwd"] = median_time(rebuilt_fwd, args.repeats, lambda: None) / n_ecos
    row.times["ecos_fb"] = row.times["ecos_fwd"] + median_time(implicit_bwd, args.repeats, lambda: None) / n_ecos

    # cvxpylayers (diffcp + SCS), a few games.
    if layers_ok and args.layers_games > 0:
        n_layers = min(args.layers_games, args.batch)
        real = cons.rows[0]
        d_layers = cons.gains[:n_layers][:, real].clone()
        e_layers = cons.eps[:n_layers][:, real].clone()
        layer = make_layer(int(real.sum()), cons.gains.shape[2])
        out: list[torch.Tensor] = []

        def layers_fwd() -> None:
            out[:] = [layer(d_layers, e_layers)[0].detach()]

        def layers_fwd_bwd() -> None:
            d = d_layers.clone().requires_grad_(True)
            (sigma,) = layer(d, e_layers)
            (sigma * weights[:n_layers]).sum().backward()

        layers_fwd()
        row.times["layers_fwd"] = median_time(layers_fwd, args.repeats, lambda: None) / n_layers
        row.times["layers_fb"] = median_time(layers_fwd_bwd, args.repeats, lambda: None) / n_layers
        row.layers_diff = float((out[0] - sigma_newton[:n_layers]).abs().max())
    return row


COLUMNS = [
    ("game", "game"), ("concept", "concept"), ("rows", "K"),
    ("ecos_fwd", "ECOS rebuilt fwd"), ("ecos_fb", "ECOS rebuilt f+b"),
    ("reused_fwd", "ECOS reused fwd"), ("reused_fb", "ECOS reused f+b"),
    ("layers_fwd", "cvxpylayers fwd"), ("layers_fb", "cvxpylayers f+b"),
    ("newton_fwd", "Newton fwd"), ("newton_fb", "Newton f+b"),
    ("x_reused", "fwd x vs ECOS reused"), ("x_layers", "f+b x vs cvxpylayers"),
    ("sigma_diff", "max abs dsigma vs ECOS"), ("layers_diff", "max abs dsigma cvxpylayers"),
    ("violation", "Newton violation"), ("kkt", "Newton KKT"), ("iterations", "iters"), ("failed", "unconverged"),
    ("ecos_fallbacks", "ECOS failed"),
]


LEGEND = """K: real constraint rows per game. Times: ms per game, forward (fwd) and forward + backward of a
scalar loss of sigma (f+b). ECOS rebuilt: `solve_game` without a cached program (problem built and
compiled per game, + the implicit backward); ECOS reused: the `exact_cvx` block, one parametrised problem
per real shape re-solved per game (implicit backward); cvxpylayers: `CvxpyLayer` (diffcp + SCS, default
settings); Newton: `exact_newton` on the whole batch. Ratios: ECOS reused fwd / Newton fwd and cvxpylayers
f+b / Newton f+b, measured in this run. max abs dsigma: largest |sigma difference| to ECOS (over the ECOS
games) and between cvxpylayers and Newton. Newton violation / KKT / iters / unconverged: worst over the
Newton batch. ECOS failed: games on which ECOS failed and a fallback solver of the block (Clarabel, then
SCS) answered.
"""


def cells(row: Row) -> list[str]:
    """The formatted cells of one row."""
    t = row.times

    def ms(key: str) -> str:
        value = t.get(key, math.nan)
        return "-" if math.isnan(value) else (f"{value * 1e3:.3f}" if value < 1e-2 else f"{value * 1e3:.1f}")

    def ratio(num: str, den: str) -> str:
        a, b = t.get(num, math.nan), t.get(den, math.nan)
        return "-" if math.isnan(a) or math.isnan(b) else f"{a / b:.0f}x"

    def sci(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1e}"

    values = {
        "game": row.game, "concept": row.concept.upper(), "rows": str(row.rows),
        "x_reused": ratio("reused_fwd", "newton_fwd"), "x_layers": ratio("layers_fb", "newton_fb"),
        "sigma_diff": sci(row.sigma_diff), "layers_diff": sci(row.layers_diff),
        "violation": sci(row.violation), "kkt": sci(row.kkt),
        "iterations": str(row.iterations), "failed": str(row.failed), "ecos_fallbacks": str(row.ecos_fallbacks),
    }
    return [values[key] if key in values else ms(key) for key, _ in COLUMNS]


def render(rows: list[Row], markdown: bool) -> str:
    """The table as aligned text or Markdown."""
    header = [title for _, title in COLUMNS]
    body = [cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*c) for c in body])


def environment(args: argparse.Namespace, layers_ok: bool) -> str:
    """One paragraph naming what the numbers were measured on."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"{datetime.datetime.now().isoformat(timespec='seconds')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores (load average {load:.1f} at the end), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {args.device}; batch {args.batch} for Newton, "
        f"{args.ecos_games} games for ECOS, {args.layers_games if layers_ok else 0} for cvxpylayers; "
        f"eps = {args.eps} relative; median of {args.repeats} repeats; glibc malloc tuned: "
        f"{'yes' if args.malloc_tuned else 'no'}; times in ms per game."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="device of the Newton block (cpu, cuda)")
    parser.add_argument("--sizes", default=None, help=f"comma-separated sizes (default {','.join(FULL_SIZES)})")
    parser.add_argument("--concepts", default="ce,cce", help="comma-separated concepts (default ce,cce)")
    parser.add_argument("--quick", action="store_true", help=f"smoke subset: {','.join(QUICK_SIZES)}, fewer games")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats, median reported (default 3)")
    parser.add_argument("--batch", type=int, default=64, help="Newton batch size (default 64)")
    parser.add_argument("--ecos-games", type=int, default=8, help="games solved by ECOS per row (default 8)")
    parser.add_argument("--layers-games", type=int, default=2,
                        help="games for cvxpylayers per row (default 2; 0 skips)")
    parser.add_argument("--eps", type=float, default=0.05, help="relative epsilon (default 0.05)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1, like the single-threaded baselines; 0 = torch's "
                             "default, which on an oversubscribed CPU makes OpenMP spin and is far slower)")
    parser.add_argument("--no-tune-malloc", action="store_true",
                        help="leave glibc malloc alone (default: did_exact_cvx.newton.tune_cpu_allocator())")
    parser.add_argument("--out", default=None, help="also write the table as Markdown to this file")
    args = parser.parse_args(argv)
    if args.out:
        try:  # before the measurement: a missing folder, a device or a run's folder is refused now
            output_file(Path(args.out), force_flag=None)
        except OutputRefused as exc:
            parser.error(str(exc))
    if args.quick:
        args.ecos_games, args.layers_games, args.repeats = min(args.ecos_games, 4), min(args.layers_games, 1), 1
    if args.threads:
        torch.set_num_threads(args.threads)
    args.malloc_tuned = False if args.no_tune_malloc else tune_cpu_allocator()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    sizes = parse_sizes(args.sizes) if args.sizes else parse_sizes(",".join(QUICK_SIZES if args.quick else FULL_SIZES))
    concepts = [c.strip().lower() for c in args.concepts.split(",") if c.strip()]
    layers_ok = have_cvxpylayers()
    if not layers_ok:
        print("cvxpylayers is not installed: its columns are skipped", file=sys.stderr)
    warnings.filterwarnings("ignore", message=".*sparse CVXPY expression.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="cvxpy")
    warnings.filterwarnings("ignore", category=FutureWarning)

    rows = []
    for size in sizes:
        for concept in concepts:
            start = time.perf_counter()
            rows.append(bench_case(size, concept, args, layers_ok))
            print(f"  {rows[-1].game} {concept}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    text = render(rows, markdown=False)
    print(text)
    print(environment(args, layers_ok))
    if args.out:
        command = "python benchmarks/exact_block.py " + " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_text(Path(args.out), "# Exact blocks: ECOS, cvxpylayers and the batched Newton block\n\n"
                          f"Command: `{command.strip()}`\n\n{environment(args, layers_ok)}\n\n"
                          + render(rows, markdown=True) + "\n\n" + LEGEND)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
