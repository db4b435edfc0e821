"""The ``ama`` mechanism task: ``did train --task ama``, ``did eval`` of its runs and shipped auctions,
``did design ama FILE.json``.

* ``did train --task ama --bidders N --items K [--lotteries L] ...`` trains an affine-maximizer
  auction (i.i.d. ``U[low, high]`` values) through the softmax relaxation in a run folder and
  writes its exchange JSON ``ama.json`` and the report of ``did eval RUN_DIR``.
* ``did eval RUN_DIR`` / ``did eval --shipped ama``: exact revenue on fresh type profiles,
  against item-wise Myerson and what is published.
* ``did design ama FILE.json``: any exchange file (an affine maximizer or a menu), its exact
  revenue on fresh samples and its parameters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from did_core.console import ArgumentParser, nonempty
from did_core.mechanism_task import start_run
from did_auctions.ama import AMAGenerator, AuctionAMA
from did_auctions.ama_training import AMATraining, ama_step
from did_auctions.checks import MAX_BIDDERS, MAX_ITEMS
from did_auctions.exchange import read_mechanism
from did_auctions.flags import MAX_SAMPLES, MAX_STEPS, bounded_int, finite_float, positive_float
from did_auctions.menu import Menu, revenue
from did_auctions.references import ama_reference, menu_reference
from did_auctions.runs import load_trained, read_settings, train_in, write_report
from did_auctions.tables import markdown_table
from did_auctions.values import Box

__all__ = ["train", "evaluate", "design", "SHIPPED", "TASK", "evaluate_amas"]

TASK = "ama"
SHIPPED = Path(__file__).parent / "shipped"
#: the most outcomes a training may use ((n + 1)^k deterministic ones plus the lotteries).
MAX_TRAIN_OUTCOMES = 4096


def _train_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did train", description="train an affine-maximizer auction")
    p.add_argument("--task", type=nonempty)
    p.add_argument("--resume", type=nonempty, metavar="RUN_DIR")
    p.add_argument("--run-dir", type=nonempty)
    p.add_argument("--bidders", type=bounded_int(1, MAX_BIDDERS), default=2)
    p.add_argument("--items", type=bounded_int(1, MAX_ITEMS), default=2)
    p.add_argument("--low", type=finite_float, default=AMATraining.low)
    p.add_argument("--high", type=finite_float, default=AMATraining.high)
    p.add_argument("--lotteries", type=bounded_int(0, MAX_TRAIN_OUTCOMES), default=AMATraining.lotteries)
    p.add_argument("--steps", type=bounded_int(1, MAX_STEPS), default=AMATraining.steps)
    p.add_argument("--profiles", type=bounded_int(1, 1 << 16), default=AMATraining.profiles)
    p.add_argument("--lr", type=positive_float, default=AMATraining.lr)
    p.add_argument("--alpha-start", type=positive_float, default=AMATraining.alpha_start)
    p.add_argument("--alpha-end", type=positive_float, default=AMATraining.alpha_end)
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0)
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=1_000_000)
    return p


def _settings(args: argparse.Namespace) -> AMATraining:
    Box((args.low,), (args.high,))  # finite, 0 <= low < high
    outcomes = (args.bidders + 1) ** args.items + args.lotteries
    if outcomes > MAX_TRAIN_OUTCOMES:
        raise ValueError(f"{args.bidders} bidders and {args.items} items give {outcomes} outcomes with the "
                         f"lotteries; at most {MAX_TRAIN_OUTCOMES}")
    return AMATraining(bidders=args.bidders, items=args.items, low=args.low, high=args.high,
                       lotteries=args.lotteries, steps=args.steps, profiles=args.profiles, lr=args.lr,
                       alpha_start=args.alpha_start, alpha_end=args.alpha_end, seed=args.seed)


def train(argv: list[str]) -> int:
    """``did train --task ama ...`` or ``did train --resume RUN_DIR`` (an AMA run)."""
    args = _train_parser().parse_args(argv)
    if args.resume:
        run, settings = read_settings(args.resume, TASK, AMATraining)
        run.acquire()
    else:
        settings = _settings(args)
        run = start_run(args.run_dir, TASK, {"settings": settings.as_json()},
                        f"ama-{settings.bidders}x{settings.items}")
    torch.manual_seed(settings.seed)
    generator = AMAGenerator(settings.bidders, settings.items, settings.lotteries)
    rng = torch.Generator().manual_seed(settings.seed)

    def step(index: int, progress: float) -> dict[str, float]:
        return ama_step(generator, settings, rng, progress)

    try:
        if not train_in(run, generator, step, rng, settings.steps, settings.lr,
                        f"ama {settings.bidders}x{settings.items}", resume=bool(args.resume)):
            return 130
        auction = generator.auction(*settings.bounds())
        run.write_json("ama.json", auction.as_json())
        report, table = evaluate_amas([("trained", auction)], args.samples, args.seed + 1)
        write_report(run, {**report, "step": settings.steps}, table)
        print(table)
    finally:
        run.release()
    return 0


def evaluate_amas(amas: list[tuple[str, AuctionAMA]], samples: int, seed: int) -> tuple[dict, str]:
    """Each named auction's exact revenue on ``samples`` fresh profiles (seeded) and its reference."""
    rows, report = [], []
    for name, auction in amas:
        bidders, items = auction.alloc.shape[1:]
        ours = auction.revenue(auction.sample(samples, torch.Generator().manual_seed(seed)))
        ref = ama_reference(bidders, items, auction.low.tolist(), auction.high.tolist())
        report.append({"name": name, "bidders": bidders, "items": items, "outcomes": auction.alloc.shape[0],
                       "revenue": ours, "samples": samples, "reference": ref.value if ref else None,
                       "source": ref.source if ref else None})
        rows.append([name, f"{bidders} x {items}", auction.alloc.shape[0], ours, report[-1]["reference"],
                     report[-1]["source"]])
    header = ["auction", "bidders x items", "outcomes", f"revenue ({samples} profiles)", "reference", "source"]
    return {"samples": samples, "seed": seed, "auctions": report}, markdown_table(header, rows)


def _eval_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did eval", description="exact revenue of affine-maximizer auctions on fresh samples")
    p.add_argument("run", nargs="?", type=nonempty, metavar="RUN_DIR")
    p.add_argument("--shipped", type=nonempty, metavar="TASK")
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=1_000_000)
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=12345)
    return p


def shipped_amas() -> list[tuple[str, AuctionAMA]]:
    """The shipped affine-maximizer files, by name."""
    found = []
    for path in sorted(SHIPPED.glob("*.json")):
        mechanism = read_mechanism(path)
        if isinstance(mechanism, AuctionAMA):
            found.append((path.stem, mechanism))
    return found


def evaluate(argv: list[str]) -> int:
    """``did eval RUN_DIR`` of an AMA run, or ``did eval --shipped ama``."""
    args = _eval_parser().parse_args(argv)
    if args.shipped:
        print(evaluate_amas(shipped_amas(), args.samples, args.seed)[1])
        return 0
    run, settings = read_settings(args.run, TASK, AMATraining)
    generator = AMAGenerator(settings.bidders, settings.items, settings.lotteries)
    step = load_trained(run, generator)
    report, table = evaluate_amas([("trained", generator.auction(*settings.bounds()))], args.samples, args.seed)
    run.acquire()
    try:
        write_report(run, {**report, "step": step}, table)
    finally:
        run.release()
    print(table)
    return 0


def _design_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did design", description="an exchange file's mechanism and its exact revenue")
    p.add_argument("task", type=nonempty)
    p.add_argument("file", type=nonempty, metavar="FILE.json", help="an exchange file (kind ama or menu)")
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=100_000)
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=12345)
    return p


def design(argv: list[str]) -> int:
    """``did design ama FILE.json``: the mechanism of an exchange file and its exact revenue."""
    args = _design_parser().parse_args(argv)
    mechanism = read_mechanism(Path(args.file))
    if isinstance(mechanism, Menu):
        values = mechanism.box.sample(args.samples, torch.Generator().manual_seed(args.seed))
        ref = menu_reference(mechanism.valuation, mechanism.box.low, mechanism.box.high)
        print(f"menu of {mechanism.options} options: expected revenue {revenue(mechanism, values):.4f} on "
              f"{args.samples} samples" + (f" (reference {ref.value}: {ref.source})" if ref else ""))
        return 0
    print(evaluate_amas([(Path(args.file).stem, mechanism)], args.samples, args.seed)[1])
    rows = [[o, " ".join(f"{x:.3f}" for x in a.flatten().tolist()), float(b)]
            for o, (a, b) in enumerate(zip(mechanism.alloc, mechanism.boosts))]
    print(f"weights: {' '.join(f'{w:.4f}' for w in mechanism.weights.tolist())}")
    print(markdown_table(["outcome", "allocation (bidder-major)", "boost"], rows))
    return 0
