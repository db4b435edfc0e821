"""The ``menu`` mechanism task: ``did train --task menu``, ``did eval`` of its runs and shipped menus,
``did design menu``.

* ``did train --task menu [--valuation V] [--low ..] [--high ..] [--shift MIN MAX] [--points P] ...``
  trains a :class:`MenuGenerator` through the relaxed choice (the registered exact block),
  in a run folder, then writes ``menu.json`` (one distribution) or ``menus/shift_C.json``
  (a family), and the report of ``did eval RUN_DIR``; ``did train --resume RUN_DIR`` goes on.
* ``did eval RUN_DIR`` / ``did eval --shipped menu``: exact revenue on fresh samples, with the
  known optimum or published number, and with ``--points P`` the LP on the ``P``-point grid
  against the menu on the same grid.
* ``did design menu INSTANCE.json``: the menu for one distribution, from the LP (``--lp``),
  a run (``--run``) or the shipped generator whose family holds it; ``--out`` writes its
  exchange JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from did_core.console import ArgumentParser, nonempty
from did_core.files import read_json_file
from did_core.mechanism_task import start_run
from did_core.plugins import create, get_concept
from did_core.runs import RunDir, atomic_write_text, json_text, output_file
from did_auctions.checks import MAX_FILE_BYTES, MAX_ITEMS, check_keys, count, number_list
from did_auctions.choice import RelaxedChoice
from did_auctions.exchange import read_mechanism
from did_auctions.family import Family
from did_auctions.flags import MAX_SAMPLES, MAX_STEPS, bounded_int, finite_float, positive_float
from did_auctions.generator import MenuGenerator
from did_auctions.lp import MAX_LP_TYPES, lp_menu, solve_lp
from did_auctions.menu import MAX_OPTIONS, Menu, revenue
from did_auctions.lp_polish import lp_polish
from did_auctions.references import menu_reference
from did_auctions.runs import load_trained, read_settings, train_in, write_report
from did_auctions.tables import markdown_table
from did_auctions.training import MenuTraining, menu_step
from did_auctions.values import VALUATIONS, Box, grid

__all__ = ["train", "evaluate", "design", "SHIPPED", "TASK"]

TASK = "menu"
#: the shipped menus (``*.json``, exchange form) and generators (``generators/NAME/``, a run's config and weights).
SHIPPED = Path(__file__).parent / "shipped"
#: shifts at which a family's generator is evaluated and exported.
FAMILY_POINTS = 5


def _train_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did train", description="train a menu for one bidder (or a family's generator)")
    p.add_argument("--task", type=nonempty)
    p.add_argument("--resume", type=nonempty, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--run-dir", type=nonempty)
    p.add_argument("--valuation", choices=VALUATIONS, default="additive")
    p.add_argument("--low", type=finite_float, nargs="+", default=[0.0, 0.0], help="low value of each item")
    p.add_argument("--high", type=finite_float, nargs="+", default=[1.0, 1.0], help="high value of each item")
    p.add_argument("--shift", type=finite_float, nargs=2, default=[0.0, 0.0], metavar=("MIN", "MAX"),
                   help="train for the family U[low + c, high + c], c in [MIN, MAX]")
    p.add_argument("--points", type=bounded_int(0, 1000), default=0,
                   help="draw types from the P-point grid (the LP's type set) instead of the box")
    p.add_argument("--options", type=bounded_int(1, 4096), default=MenuTraining.options)
    p.add_argument("--width", type=bounded_int(1, 4096), default=MenuTraining.width)
    p.add_argument("--steps", type=bounded_int(1, MAX_STEPS), default=MenuTraining.steps)
    p.add_argument("--members", type=bounded_int(1, 1024), default=MenuTraining.members,
                   help="distributions of the family per step")
    p.add_argument("--types", type=bounded_int(1, 1 << 16), default=MenuTraining.types,
                   help="types per distribution per step")
    p.add_argument("--lr", type=positive_float, default=MenuTraining.lr)
    p.add_argument("--eps-start", type=positive_float, default=MenuTraining.eps_start,
                   help="choice tolerance at the start, a fraction of the value scale")
    p.add_argument("--eps-end", type=positive_float, default=MenuTraining.eps_end)
    p.add_argument("--block", type=nonempty, default=MenuTraining.block, help="the exact block of the choice")
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0)
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=1_000_000,
                   help="fresh types of the final evaluation")
    return p


def _settings(args: argparse.Namespace) -> MenuTraining:
    items = len(args.low)
    if len(args.high) != items:
        raise ValueError(f"--low and --high must list the same number of items, got {items} and {len(args.high)}")
    count(items, "the number of items (--low/--high)", MAX_ITEMS)
    family = Family(Box(tuple(args.low), tuple(args.high)), args.shift[0], args.shift[1], args.points)
    if args.points and args.points ** items > MAX_LP_TYPES * 100:
        raise ValueError(f"--points {args.points} makes {args.points ** items} types over {items} items; at most "
                         f"{MAX_LP_TYPES * 100}")
    return MenuTraining(items=items, valuation=args.valuation, family=family.as_json(), options=args.options,
                        width=args.width, steps=args.steps, members=args.members, types=args.types, lr=args.lr,
                        eps_start=args.eps_start, eps_end=args.eps_end, seed=args.seed, block=args.block)


def _choice(block: str) -> RelaxedChoice:
    """The relaxed choice through the registered block ``block`` under CCE (an unknown name: one error line)."""
    return RelaxedChoice(create("blocks", block), get_concept("cce"))


def train(argv: list[str]) -> int:
    """``did train --task menu ...`` or ``did train --resume RUN_DIR`` (a menu run)."""
    args = _train_parser().parse_args(argv)
    if args.resume:
        run, settings = read_settings(args.resume, TASK, MenuTraining)
        choice = _choice(settings.block)
        run.acquire()
    else:
        settings = _settings(args)
        choice = _choice(settings.block)  # an unknown block is refused before the folder is made
        run = start_run(args.run_dir, TASK, {"settings": settings.as_json()},
                        f"menu-{settings.valuation}-{settings.items}")
    family = Family.from_json(settings.family)
    torch.manual_seed(settings.seed)
    generator = MenuGenerator(settings.items, settings.options, settings.valuation, settings.width)
    rng = torch.Generator().manual_seed(settings.seed)

    def step(index: int, progress: float) -> dict[str, float]:
        return menu_step(generator, family, choice, settings, rng, progress)

    try:
        if not train_in(run, generator, step, rng, settings.steps, settings.lr, f"menu {settings.valuation}",
                        resume=bool(args.resume)):
            return 130
        _export(run, generator, settings)
        print(_evaluate_run(run, generator, settings, args.samples, args.seed + 1, points=0, step=settings.steps))
    finally:
        run.release()
    return 0


def _members(family: Family) -> list[float]:
    """The shifts at which a run is evaluated and exported: the one member, or FAMILY_POINTS across the family."""
    if family.shift_min == family.shift_max:
        return [family.shift_min]
    step = (family.shift_max - family.shift_min) / (FAMILY_POINTS - 1)
    return [family.shift_min + i * step for i in range(FAMILY_POINTS)]


def _export(run: RunDir, generator: MenuGenerator, settings: MenuTraining) -> None:
    """``menu.json`` (one distribution) or ``menus/shift_C.json`` per evaluated member (a family)."""
    family = Family.from_json(settings.family)
    shifts = _members(family)
    if len(shifts) == 1:
        run.write_json("menu.json", generator.menu(family.member(shifts[0])).as_json())
        return
    run.file("menus").mkdir(exist_ok=True)
    for c in shifts:
        run.write_json(f"menus/shift_{c:g}.json", generator.menu(family.member(c)).as_json())


def _setting(menu: Menu) -> str:
    box = menu.box
    dims = " x ".join(f"U[{lo:g},{hi:g}]" for lo, hi in zip(box.low, box.high))
    return f"{menu.valuation} {dims}"


def evaluate_menus(menus: list[tuple[str, Menu]], samples: int, seed: int, points: int) -> tuple[dict, str]:
    """Each named menu's exact revenue on ``samples`` fresh types (seeded), its reference and, with ``points``,
    the LP on the grid; returns the report and its table."""
    rows, report = [], []
    for name, menu in menus:
        values = menu.box.sample(samples, torch.Generator().manual_seed(seed))
        ours = revenue(menu, values)
        ref = menu_reference(menu.valuation, menu.box.low, menu.box.high)
        entry: dict[str, Any] = {"name": name, "setting": _setting(menu), "options": menu.options,
                                 "revenue": ours, "samples": samples,
                                 "reference": ref.value if ref else None, "source": ref.source if ref else None}
        if points:
            types, probabilities = grid(menu.box, points)
            lp = solve_lp(types, probabilities, menu.valuation)
            on_grid = revenue(menu, types, probabilities)
            polished = revenue(lp_polish(menu, types, probabilities), types, probabilities)
            entry.update(points=points, lp=lp.revenue, menu_on_grid=on_grid, ratio_to_lp=on_grid / lp.revenue,
                         polished_on_grid=polished, polished_ratio_to_lp=polished / lp.revenue)
        report.append(entry)
        rows.append([name, entry["setting"], menu.options, ours, entry["reference"], entry["source"],
                     entry.get("lp"), entry.get("menu_on_grid"), entry.get("ratio_to_lp"),
                     entry.get("polished_ratio_to_lp")])
    header = ["menu", "setting", "options", f"revenue ({samples} samples)", "reference", "source",
              f"LP ({points}-point grid)" if points else "LP", "menu on grid", "menu / LP", "polished / LP"]
    return {"samples": samples, "seed": seed, "menus": report}, markdown_table(header, rows)


def _evaluate_run(run: RunDir, generator: MenuGenerator, settings: MenuTraining, samples: int, seed: int,
                  points: int, step: int) -> str:
    """Evaluate the run's generator at its members (the LP on the ``points`` grid, else on the grid it was
    trained on, if any); write report.json / report.md; return the table."""
    family = Family.from_json(settings.family)
    menus = [(f"shift {c:g}", generator.menu(family.member(c))) for c in _members(family)]
    report, table = evaluate_menus(menus, samples, seed, points or family.points)
    report["step"] = step
    write_report(run, report, table)
    return table


def _eval_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did eval", description="exact revenue of menus on fresh samples, against the LP")
    p.add_argument("run", nargs="?", type=nonempty, metavar="RUN_DIR")
    p.add_argument("--shipped", type=nonempty, metavar="TASK")
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=1_000_000)
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=12345)
    p.add_argument("--points", type=bounded_int(0, 1000), default=0, help="also solve the LP on this grid")
    return p


def _check_points(points: int, items: int) -> None:
    if points and points ** items > MAX_LP_TYPES:
        raise ValueError(f"--points {points} over {items} items is {points ** items} types; the LP takes at most "
                         f"{MAX_LP_TYPES}")


def shipped_menus() -> list[tuple[str, Menu]]:
    """The shipped menu files, by name."""
    found = []
    for path in sorted(SHIPPED.glob("*.json")):
        mechanism = read_mechanism(path)
        if isinstance(mechanism, Menu):
            found.append((path.stem, mechanism))
    return found


def shipped_families() -> list[tuple[str, list[tuple[str, Menu]], int]]:
    """Each shipped generator trained for a family: its name, its menus at the evaluated shifts, its grid."""
    found = []
    for folder in sorted((SHIPPED / "generators").glob("*")):
        run, settings = read_settings(str(folder), TASK, MenuTraining)
        family = Family.from_json(settings.family)
        if family.shift_min == family.shift_max:
            continue
        generator = MenuGenerator(settings.items, settings.options, settings.valuation, settings.width)
        load_trained(run, generator)
        found.append((folder.name, [(f"shift {c:g}", generator.menu(family.member(c))) for c in _members(family)],
                      family.points))
    return found


def evaluate(argv: list[str]) -> int:
    """``did eval RUN_DIR`` of a menu run, or ``did eval --shipped menu``."""
    args = _eval_parser().parse_args(argv)
    if args.shipped:
        menus = shipped_menus()
        for _, menu in menus:
            _check_points(args.points, menu.box.items)
        print(evaluate_menus(menus, args.samples, args.seed, args.points)[1])
        for name, family_menus, points in shipped_families():
            print(f"\n{name}: the generator across its family, against the LP on its {points}-point grid")
            print(evaluate_menus(family_menus, args.samples, args.seed, points)[1])
        return 0
    run, settings = read_settings(args.run, TASK, MenuTraining)
    _check_points(args.points, settings.items)
    generator = MenuGenerator(settings.items, settings.options, settings.valuation, settings.width)
    step = load_trained(run, generator)
    run.acquire()
    try:
        print(_evaluate_run(run, generator, settings, args.samples, args.seed, args.points, step))
    finally:
        run.release()
    return 0


def _design_parser() -> ArgumentParser:
    p = ArgumentParser(prog="did design", description="the menu for one distribution: learned or the LP's")
    p.add_argument("task", type=nonempty)
    p.add_argument("instance", type=nonempty, metavar="INSTANCE.json",
                   help='{"items": k, "valuation": V, "distribution": {"low": [..k], "high": [..k]}}')
    source = p.add_mutually_exclusive_group()
    source.add_argument("--lp", action="store_true", help="solve the LP on the --points grid")
    source.add_argument("--run", type=nonempty, metavar="RUN_DIR", help="a trained menu run (default: shipped)")
    p.add_argument("--points", type=bounded_int(1, 1000), default=10)
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=100_000)
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=12345)
    p.add_argument("--out", type=nonempty, metavar="FILE.json", help="write the menu's exchange JSON")
    p.add_argument("--force", action="store_true", help="write --out inside a run or shipped folder")
    return p


def read_instance(path: Path) -> tuple[str, Box]:
    """The valuation and distribution of an instance file (a ``ValueError`` naming the file otherwise)."""
    try:
        return _instance(read_json_file(path, MAX_FILE_BYTES))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _instance(data: Any) -> tuple[str, Box]:
    data = check_keys(data, "the instance", {"items", "valuation", "distribution"})
    items = count(data["items"], "items", MAX_ITEMS)
    if data["valuation"] not in VALUATIONS:
        raise ValueError(f"valuation must be one of {', '.join(VALUATIONS)}")
    dist = check_keys(data["distribution"], "distribution", {"low", "high"})
    return data["valuation"], Box(tuple(number_list(dist["low"], "distribution.low", items)),
                                  tuple(number_list(dist["high"], "distribution.high", items)))


def _covering(valuation: str, box: Box, settings: MenuTraining) -> bool:
    """Does the family of ``settings`` hold ``box`` (same valuation, same widths, shift in range)?"""
    family = Family.from_json(settings.family)
    if settings.valuation != valuation or family.base.items != box.items:
        return False
    shifts = {round(lo - base, 9) for lo, base in zip(box.low, family.base.low)}
    shifts |= {round(hi - base, 9) for hi, base in zip(box.high, family.base.high)}
    return len(shifts) == 1 and family.shift_min - 1e-9 <= shifts.pop() <= family.shift_max + 1e-9


def _learned(valuation: str, box: Box, run_path: str | None) -> Menu:
    """The menu for ``box`` from the run ``run_path``, else from a shipped generator whose family covers it (one
    trained on the continuous distribution before one trained on a grid)."""
    folders = [Path(run_path)] if run_path else sorted((SHIPPED / "generators").glob("*"))
    covering = []
    for folder in folders:
        run, settings = read_settings(str(folder), TASK, MenuTraining)
        if _covering(valuation, box, settings):
            covering.append((Family.from_json(settings.family).points > 0, str(folder), run, settings))
    if not covering:
        where = f"the run {run_path} does not cover" if run_path else "no shipped generator covers"
        raise ValueError(f"{where} {valuation} {list(box.low)}..{list(box.high)}; use --lp, or --run with a run "
                         f"trained for it")
    _, _, run, settings = min(covering, key=lambda c: c[:2])
    generator = MenuGenerator(settings.items, settings.options, settings.valuation, settings.width)
    load_trained(run, generator)
    return generator.menu(box)


def design(argv: list[str]) -> int:
    """``did design menu INSTANCE.json [--lp --points P | --run RUN_DIR] [--out FILE]``."""
    args = _design_parser().parse_args(argv)
    out = output_file(Path(args.out), force=args.force) if args.out else None
    valuation, box = read_instance(Path(args.instance))
    if args.lp:
        _check_points(args.points, box.items)
        types, probabilities = grid(box, args.points)
        menu = lp_menu(solve_lp(types, probabilities, valuation), valuation, box)
        source = f"LP on the {args.points}-point grid"
    else:
        menu = _learned(valuation, box, args.run)
        source = f"learned ({args.run or 'shipped generator'})"
    if menu.options > MAX_OPTIONS:
        raise ValueError(f"the menu has {menu.options} options, over the {MAX_OPTIONS} a menu file may hold")
    values = box.sample(args.samples, torch.Generator().manual_seed(args.seed))
    rows = [[i + 1, " ".join(f"{abs(z) if abs(z) < 5e-5 else z:.4f}" for z in alloc.tolist()), float(price)]
            for i, (alloc, price) in enumerate(zip(menu.alloc, menu.price))]
    print(f"menu for {_setting(menu)} ({source}): expected revenue {revenue(menu, values):.4f} "
          f"on {args.samples} samples")
    print(markdown_table(["option", "allocation", "price"], rows))
    if out is not None:
        atomic_write_text(out, json_text(menu.as_json()))
        print(f"wrote {out}", file=sys.stderr)
    return 0
