"""``did stackelberg [RUN]``: commitments against the strong Stackelberg value on held-out games.

Why: ``did eval`` reports the leader's utility; the commitment task's yardstick is
the exact strong Stackelberg value (SSE, multiple LPs, exact best responses),
which a leader facing an eps-best-responding follower can approach but not
reach. This command draws held-out games with the run's sampler options (and
``reference`` on), solves the induced games with the exact block at the run's
eps and prints, per commitment source, the mean leader utility and the mean
ratio utility / SSE, overall and per size (the largest action count):

* ``uniform``: the uniform commitment (the objective's baseline);
* ``generator``: the trained run's generator (with ``RUN``);
* ``optimised``: per-instance gradient ascent through the exact block
  (:func:`did_stackelberg.design_commitment.optimise_commitment`, ``--optimise-steps``
  > 0), what the generator could reach per game.

Without ``RUN`` the sampler's quick profile is used; ``--eps`` / ``--absolute`` set
the tolerance of the evaluation (default: the run's; a generator trained at a
larger eps, where the follower's answer is smoother, may be evaluated at a smaller one).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.bounds import TooLarge, check_memory, duration
from did_core.components import load_generator
from did_core.concepts import Concept
from did_core.console import ArgumentParser, fail, nonempty
from did_core.equilibria import Epsilon
from did_core.evaluate import HELD_OUT_OVERHEAD, MAX_EVALUATION_SECONDS
from did_core.plugins import create, exact_block_for, get_concept
from did_core.tasks import Context, index_context
from did_stackelberg.commitment import CommitmentObjective, CommitmentSampler, induced_games, leader_utility
from did_stackelberg.design_commitment import optimise_commitment

__all__ = ["main", "commitment_report"]


def _values(block: Any, context: Context, x: Tensor, concept: Concept, eps: Epsilon, chunk: int = 128) -> Tensor:
    """Leader utilities ``[B]`` of commitments ``x [B, L]`` under ``block``'s equilibria."""
    out = []
    for start in range(0, x.shape[0], chunk):
        part, xs = index_context(context, slice(start, start + chunk)), x[start:start + chunk].double()
        with torch.no_grad():
            eq = block(induced_games(part, xs), part["mask"], concept=concept, eps=eps)
            out.append(leader_utility(part, xs, eq.sigma))
    return torch.cat(out)


def commitment_report(context: Context, commitments: dict[str, Tensor], block: Any, concept: Concept, eps: Epsilon,
                      sizes: Tensor) -> dict[str, Any]:
    """Per source: mean utility, mean ratio to the SSE, and the ratio per size (contexts with SSE > 0 only);
    ``per_context``: the SSE and every source's utility for each context, beside each other."""
    sse = context["sse"]
    keep = torch.isfinite(sse) & (sse > 0)
    out: dict[str, Any] = {"contexts": int(keep.sum()), "sse": float(sse[keep].mean()),
                           "per_context": {"size": sizes.tolist(), "sse": sse.tolist()}}
    for name, x in commitments.items():
        value = _values(block, context, x, concept, eps)
        out["per_context"][name] = value.tolist()
        ratio = value / sse
        out[name] = {"utility": float(value[keep].mean()), "ratio": float(ratio[keep].mean()),
                     "per_size": {str(int(s)): float(ratio[keep & (sizes == s)].mean())
                                  for s in torch.unique(sizes[keep])}}
    return out


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="did stackelberg", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", nargs="?", type=nonempty,
                   help="a trained run of task commitment (omit: uniform and optimised only)")
    p.add_argument("--contexts", type=int, default=512, help="held-out games (default 512)")
    p.add_argument("--seed", type=int, default=12345, help="held-out seed (default 12345, did train's eval seed)")
    p.add_argument("--block", type=nonempty,
                   help="exact block (default: the run's exact block, else the preferred one)")
    p.add_argument("--eps", type=float, help="evaluate at this tolerance (default: the run's; without RUN 0.003)")
    p.add_argument("--absolute", action="store_true", help="--eps is absolute, not relative to the payoff scale")
    p.add_argument("--optimise-steps", type=int, default=0, help="also per-instance ascent, this many steps")
    p.add_argument("--lr", type=float, default=0.05, help="per-instance ascent rate (default 0.05)")
    p.add_argument("--json", action="store_true", help="print one JSON object (with every context's values)")
    return p


def _check_size(sampler: CommitmentSampler, contexts: int, probe: int = 8) -> None:
    """Refuse, before drawing them, ``contexts`` held-out games (with their strong Stackelberg values, multiple LPs
    each) whose memory or time, estimated from ``probe`` of them, is over its bound."""
    count = min(contexts, probe)
    started = time.perf_counter()
    sample = sampler.sample(count, torch.Generator().manual_seed(0))
    seconds = (time.perf_counter() - started) / count * contexts
    check_memory(HELD_OUT_OVERHEAD * sum(t.element_size() * t.numel() for t in sample.values()) / count, contexts,
                 "held-out games", "--contexts")
    if seconds > MAX_EVALUATION_SECONDS:
        raise TooLarge(f"--contexts {contexts}: drawing the games and their strong Stackelberg values would take "
                       f"about {duration(seconds)}, over {duration(MAX_EVALUATION_SECONDS)}; lower --contexts")


def main(argv: list[str]) -> int:
    """``did stackelberg``; returns the exit code (a user error: one line, 2)."""
    args = _parser().parse_args(argv)
    if args.contexts < 1 or args.optimise_steps < 0 or not args.lr > 0:
        return fail(f"need --contexts >= 1, --optimise-steps >= 0 and --lr > 0, got {args.contexts}, "
                    f"{args.optimise_steps} and {args.lr:g}")
    concept, options, generator = "cce", dict(CommitmentSampler.PROFILES["quick"]), None
    eps = Epsilon(0.003 if args.eps is None else args.eps, relative=not args.absolute)
    exact = args.block
    if args.run_dir:
        cfg, _, generator = load_generator(Path(args.run_dir), "commitment")
        concept, options = cfg.concept, dict(cfg.sampler_options)
        if args.eps is None:
            eps = Epsilon(cfg.eps, relative=not cfg.absolute_eps)
        exact = exact or cfg.exact_block
    sampler = CommitmentSampler(**{**options, "reference": True})
    _check_size(sampler, args.contexts)
    context = sampler.sample(args.contexts, torch.Generator().manual_seed(args.seed))
    block = create("blocks", exact or exact_block_for(concept))
    commitments = {"uniform": CommitmentObjective().baseline_intervention(context)}
    if generator is not None:
        with torch.no_grad():
            commitments["generator"] = torch.cat([generator(index_context(context, slice(s, s + 128))).double()
                                                  for s in range(0, args.contexts, 128)])
    if args.optimise_steps > 0:
        commitments["optimised"] = optimise_commitment(context, block, get_concept(concept), eps, args.optimise_steps,
                                                        args.lr)
    report = commitment_report(context, commitments, block, get_concept(concept), eps, sampler.size_of(context))
    report.update(concept=concept, eps=eps.value, relative_eps=eps.relative, seed=args.seed,
                  block=exact or exact_block_for(concept))
    if args.json:
        print(json.dumps(report))
        return 0
    mode = "relative" if eps.relative else "absolute"
    print(f"{report['contexts']} held-out games (seed {args.seed}), {concept} at {mode} eps {eps.value:g}, "
          f"block {report['block']}; mean strong Stackelberg value {report['sse']:.4f}")
    print("| commitment | leader utility | utility / SSE | per size: ratio |")
    print("|---|---|---|---|")
    for name in commitments:
        r = report[name]
        sizes = ", ".join(f"{s}: {v:.3f}" for s, v in r["per_size"].items())
        print(f"| {name} | {r['utility']:.4f} | {r['ratio']:.4f} | {sizes} |")
    return 0
