"""What the bonus screener's checked proposals buy: the same trained network, 0 to many proposals.

    python benchmarks/screener_proposals.py --concept cce --contexts 1024
    python benchmarks/screener_proposals.py --generator RUN_DIR --proposals 0,1,8,32,128

The shipped contract generator (``contract_screener``, or any run of it) is scored
under the exact block on fresh contexts of its own sampling, once per number of
proposals ``k``: ``0`` is the network alone (the best-scored bonus where its
predicted gain is above the threshold, no solve); ``k >= 1`` solves the ``k``
best-scored bonuses and no contract under the exact block and keeps the best
(``k + 1`` solves per context, never worse than no contract). The change of the
principal's utility against no contract is reported overall and per size group
(share improved). The table goes to ``benchmarks/results/screener_proposals_CONCEPT.md``
(``--out`` elsewhere) with the command that made it, and its numbers to a JSON
file beside it. The seconds are this machine's, for orientation only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from did_core.components import load_trained
from did_core.evaluate import generate
from did_core.report import command_line, within, write_result
from did_core.shipped import ShippedError, shipped_folder

HERE = Path(__file__).resolve().parent
GROUPS = ((2, 5), (6, 9), (10, 13), (14, 16))


def measure(folder: Path, proposals: list[int], contexts: int, seed: int, chunk: int) -> dict:
    """One row per number of proposals: the mean change overall and per size group, share improved, seconds."""
    cfg, parts, state = load_trained(folder)
    generator = parts.generator
    if not hasattr(generator, "bind_exact") or "proposals" not in type(generator.options).model_fields:
        raise ValueError(f"{folder} is not a run of the bonus screener (generator contract_screener)")
    context = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    context = {k: v.double() if v.is_floating_point() else v for k, v in context.items()}
    scorer = parts.scorer(parts.block)
    sizes = parts.sampler.size_of(context)
    rows = []
    for k in proposals:
        parts.generator = type(generator)(parts.sampler, **{**generator.options.model_dump(), "proposals": k})
        parts.generator.load_state_dict(generator.state_dict())
        parts.generator.bind_exact(parts.block, parts.concept, parts.eps)
        started = time.perf_counter()
        x, x0 = generate(parts, context, chunk)
        seconds = time.perf_counter() - started
        change = scorer.values(context, x.double(), chunk)[0] - scorer.values(context, x0.double(), chunk)[0]
        cells = {"all": change}
        cells.update({f"{lo}-{hi}": change[(sizes >= lo) & (sizes <= hi)] for lo, hi in GROUPS})
        rows.append({"proposals": k, "seconds": round(seconds, 1),
                     **{name: {"mean": float(v.mean()), "improved": float((v > 1e-9).double().mean()),
                               "contexts": int(v.numel())} for name, v in cells.items() if v.numel()}})
    return {"generator": within(folder, HERE.parent), "task": cfg.task, "concept": cfg.concept, "eps": cfg.eps,
            "exact_block": cfg.exact_block, "contexts": contexts, "seed": seed,
            "trained_steps": int(state.get("step", 0)), "rows": rows}


def table(result: dict) -> str:
    """The Markdown table of a :func:`measure` result."""
    groups = ["all", *(f"{lo}-{hi}" for lo, hi in GROUPS)]
    lines = [f"{result['task']}, {result['concept'].upper()}, eps {result['eps']}, exact block "
             f"`{result['exact_block']}`; {result['contexts']} contexts, seed {result['seed']}; generator "
             f"`{result['generator']}` ({result['trained_steps']} steps). Cells: utility change against no "
             f"contract (share improved), by actions of the largest agent.", "",
             "| proposals | " + " | ".join(groups) + " | seconds |", "|---|" + "---|" * (len(groups) + 1)]
    for row in result["rows"]:
        cells = [f"{row[g]['mean']:+.4f} ({100 * row[g]['improved']:.0f}%)" if g in row else "-" for g in groups]
        lines.append(f"| {row['proposals']} | " + " | ".join(cells) + f" | {row['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concept", default="cce", help="whose shipped contract generator (without --generator)")
    parser.add_argument("--generator", type=Path, help="a run directory of contract_screener")
    parser.add_argument("--proposals", default="0,1,8,32,128", help="comma-separated numbers of proposals")
    parser.add_argument("--contexts", type=int, default=512)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="the Markdown file (the JSON goes beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        proposals = [int(p) for p in args.proposals.split(",")]
        if any(p < 0 for p in proposals) or args.contexts < 1:
            raise ValueError("--proposals must be numbers >= 0 and --contexts at least 1")
        folder = args.generator or shipped_folder("contract", args.concept)
        result = measure(folder, proposals, args.contexts, args.seed, args.chunk)
    except (OSError, ValueError, LookupError, ShippedError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    text = table(result)
    print(text)
    out = args.out or HERE / "results" / f"screener_proposals_{result['concept']}.md"
    command = command_line("benchmarks/screener_proposals.py", argv or sys.argv[1:])
    write_result(out, "Bonus screener: checked proposals", command, text, result)
    print(f"written: {out} and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
