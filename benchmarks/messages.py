"""Message mechanisms (issue 31): trained generators against the optimum, under the exact block and no-regret followers.

One command, one table::

    python benchmarks/messages.py [--allocation FOLDER] [--spm FOLDER] [--contexts 512] [--seed 12345]
        [--followers no_regret] [--out benchmarks/results/messages.md]

``FOLDER`` is a run directory or a shipped generator's folder (default: the
generators ``did-plugins-messages`` ships for ``cce``), evaluated at its own
concept and eps.

* **message_allocation**: on ``--contexts`` held-out priors (the run's sampler,
  ``--seed``), per number of items ``k`` and overall: the share of the optimum
  (mean value over mean optimum, the sum of the ``m`` largest priors) under the
  exact block and under each follower block, and the worst context's share
  under the exact block.
* **mu_spm**: the welfare loss on the paper's instance (``e = 0.2``, two messages)
  of the generator's mechanism and of ``did design``'s default answer (the
  generator's mechanism refined by 200 Adam steps of rate 0.05 through the exact
  block), under the exact block and each follower block; and the mean loss over
  the held-out family.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.components import load_trained
from did_core.evaluate import generate
from did_core.plugins import create, get_task
from did_core.runs import OutputRefused, atomic_write_text, output_file
from did_core.tasks import Context, index_context
from did_messages.spm import paper_instance


def values(parts: Any, block: Any, context: Context, x: Tensor, chunk: int = 64) -> Tensor:
    """The designer's value ``[B]`` of interventions ``x`` under ``block`` (at the run's concept and eps)."""
    out = []
    for start in range(0, x.shape[0], chunk):
        part = index_context(context, slice(start, start + chunk))
        with torch.no_grad():
            eq = parts.scorer(block).solve(part, x[start:start + chunk])
            out.append(parts.objective.value(part, x[start:start + chunk], eq).double())
    return torch.cat(out)


def allocation_rows(folder: Path, contexts: int, seed: int, followers: list[str]) -> list[dict[str, Any]]:
    """Per ``k`` (and ``all``): the share of the optimum under each block (module docstring)."""
    cfg, parts, _ = load_trained(folder)
    held_out = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    x, _ = generate(parts, held_out)
    optimum = held_out["optimum"].double()
    k = held_out["items"].sum(dim=1)
    by_block = {name: values(parts, create("blocks", name), held_out, x)
                for name in [cfg.exact_block, *followers]}
    rows = []
    for label, rows_of in [*((str(int(n)), k == n) for n in k.unique()), ("all", torch.ones_like(k, dtype=torch.bool))]:
        row: dict[str, Any] = {"k": label, "contexts": int(rows_of.sum()), "optimum": float(optimum[rows_of].mean())}
        for name, value in by_block.items():
            row[name] = float(value[rows_of].sum() / optimum[rows_of].sum())
        exact = by_block[cfg.exact_block]
        row["worst"] = float((exact[rows_of] / optimum[rows_of]).min())
        rows.append(row)
    return [{"eps": cfg.eps, "absolute": cfg.absolute_eps, "blocks": list(by_block), **r} for r in rows]


def spm_rows(folder: Path, contexts: int, seed: int, followers: list[str]) -> dict[str, Any]:
    """The paper instance's welfare loss (generator, refined) per block, and the held-out family's mean loss."""
    cfg, parts, _ = load_trained(folder)
    instance = paper_instance()
    with torch.no_grad():
        x = parts.generator(instance).double()
    exact = create("blocks", cfg.exact_block)
    refined = get_task(cfg.task).instances.optimise(instance, exact, parts.concept, parts.eps, 200, 0.05, start=x)
    names = [cfg.exact_block, *followers]
    paper = {name: {"generator": float(values(parts, create("blocks", name), instance, x)[0]),
                    "refined": float(values(parts, create("blocks", name), instance, refined)[0])} for name in names}
    held_out = parts.sampler.sample(contexts, torch.Generator().manual_seed(seed))
    xs, x0 = generate(parts, held_out)
    family = {name: float(values(parts, create("blocks", name), held_out, xs).mean()) for name in names}
    baseline = float(values(parts, exact, held_out, x0).mean())
    return {"eps": cfg.eps, "absolute": cfg.absolute_eps, "paper": paper, "family": family,
            "family_baseline": baseline, "mechanism": refined[0].tolist()}


def text(allocation: list[dict[str, Any]] | None, spm: dict[str, Any] | None, contexts: int, seed: int) -> str:
    """The Markdown tables."""
    out = []
    if allocation:
        blocks = allocation[0]["blocks"]
        eps = f"{allocation[0]['eps']:g} {'absolute' if allocation[0]['absolute'] else 'relative'}"
        out.append(f"## message_allocation ({contexts} held-out priors, seed {seed}, eps {eps})\n\n"
                   "Share of the optimum = mean value / mean optimum (the sum of the m largest priors); worst = the "
                   "least share of one context under the exact block.\n\n"
                   f"| k | contexts | mean optimum | {' | '.join(blocks)} | worst |\n"
                   f"|---|---|---|{'---|' * len(blocks)}---|")
        for r in allocation:
            out.append(f"| {r['k']} | {r['contexts']} | {r['optimum']:.4f} | "
                       + " | ".join(f"{r[b]:.4f}" for b in blocks) + f" | {r['worst']:.4f} |")
    if spm:
        eps = f"{spm['eps']:g} {'absolute' if spm['absolute'] else 'relative'}"
        out.append(f"\n## mu_spm (eps {eps})\n\nWelfare loss on the paper's instance (e = 0.2, two messages; the best "
                   "mechanism without messages loses 0.15) and the mean over "
                   f"{contexts} held-out instances of the family (seed {seed}; baseline mechanism: "
                   f"{spm['family_baseline']:.4f}).\n\n| block | paper: generator | paper: refined (did design) | "
                   "family: generator |\n|---|---|---|---|")
        for name, r in spm["paper"].items():
            out.append(f"| {name} | {r['generator']:.4f} | {r['refined']:.4f} | {spm['family'][name]:.4f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shipped = Path(get_task("message_allocation").shipped or "."), Path(get_task("mu_spm").shipped or ".")
    p.add_argument("--allocation", type=Path, default=shipped[0] / "cce", help="message_allocation run or folder")
    p.add_argument("--spm", type=Path, default=shipped[1] / "cce", help="mu_spm run or folder")
    p.add_argument("--skip", choices=["allocation", "spm"], help="leave one task out")
    p.add_argument("--contexts", type=int, default=512)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--followers", nargs="*", default=["no_regret"], help="follower blocks besides the exact one")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="also write the tables (with the command and machine) here")
    args = p.parse_args(argv)
    if args.out:
        try:  # before the measurement: a missing folder, a device or a run's folder is refused now
            output_file(Path(args.out), force_flag=None)
        except OutputRefused as exc:
            p.error(str(exc))
    torch.set_num_threads(args.threads)
    allocation = None if args.skip == "allocation" else allocation_rows(args.allocation, args.contexts, args.seed,
                                                                         args.followers)
    spm = None if args.skip == "spm" else spm_rows(args.spm, args.contexts, args.seed, args.followers)
    result = text(allocation, spm, args.contexts, args.seed)
    print(result)
    if args.out:
        stamp = datetime.date.today().isoformat()
        command = "python benchmarks/messages.py " + " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_text(args.out, f"# Message mechanisms ({stamp}, {platform.processor() or platform.machine()}, "
                                    f"torch {torch.__version__}, {args.threads} thread)\n\n`{command}`\n\n{result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
