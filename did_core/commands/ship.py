"""``did ship RUN_DIR FOLDER``: export a finished, evaluated run as a generator shipped inside a task plugin
(:func:`did_core.shipped.ship`: weights, config, report, model card, learning curve), after checking the
destination (:func:`did_core.shipped.check_destination`; ``--force`` replaces a shipped folder).
``did ship --report FILE.json FOLDER``: give a shipped generator a new held-out report (``did eval --shipped
... --out FILE.json``, e.g. with ``--range``) and regenerate its model card (:func:`did_core.shipped.replace_report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from did_core.console import ArgumentParser, Command, fail, nonempty
from did_core.files import MIB, UnreadableFile, read_json_file, read_text_file
from did_core.hookspecs import hookimpl
from did_core.registry import Registry
from did_core.shipped import check_destination, replace_report, ship

__all__ = ["build_parser", "main", "COMMAND"]


def build_parser() -> ArgumentParser:
    """The arguments of ``did ship``."""
    p = ArgumentParser(prog="did ship")
    p.add_argument("run_dir", help="a finished run directory with a report.json (did eval RUN); with --report: "
                   "the shipped folder")
    p.add_argument("folder", nargs="?", help="the shipped folder to write, e.g. "
                   "plugins/tasks_inverse/did_inverse/shipped/cce")
    p.add_argument("--report", type=nonempty, metavar="FILE.json", help="instead of shipping a run: replace the "
                   "held-out report of the shipped folder given with this one (did eval --shipped TASK --concept C "
                   "[--range] --out FILE.json) and regenerate its model card, its notes kept")
    p.add_argument("--notes", type=nonempty, metavar="FILE", help="Markdown added to the model card (e.g. the "
                   "commands used and what more steps would buy)")
    p.add_argument("--unfinished", action="store_true", help="ship the last checkpoint of a run that stopped "
                   "before its last step (the model card shows the step)")
    p.add_argument("--force", action="store_true", help="replace FOLDER when it is a shipped folder already (it "
                   "holds exactly the shipped files), or write it inside a run directory or shipped folder")
    return p


def main(argv: list[str]) -> int:
    """``did ship RUN_DIR FOLDER [--notes FILE] [--unfinished] [--force]`` or ``did ship --report FILE.json
    FOLDER``."""
    args: argparse.Namespace = build_parser().parse_args(argv)
    if args.report is not None:
        if args.folder is not None or args.notes or args.unfinished or args.force:
            return fail("--report takes one folder (the shipped one) and no other option")
        try:
            report = read_json_file(Path(args.report), 16 * MIB)
        except UnreadableFile as exc:
            raise UnreadableFile(f"--report {args.report}: {exc}") from None
        written = replace_report(Path(args.run_dir), report)
        print("written: " + ", ".join(str(p) for p in written))
        return 0
    if args.folder is None:
        return fail("give the run directory and the shipped FOLDER to write")
    check_destination(Path(args.run_dir), Path(args.folder), args.force)  # before the notes are even read
    try:
        notes = read_text_file(Path(args.notes), 1 << 20) if args.notes else ""
    except UnreadableFile as exc:
        raise UnreadableFile(f"--notes {args.notes}: {exc}") from None
    written = ship(Path(args.run_dir), Path(args.folder), notes, unfinished=args.unfinished, force=args.force)
    print("written: " + ", ".join(str(p) for p in written))
    return 0


COMMAND = Command(main, "export a finished, evaluated run as a shipped generator (weights, config, report, model "
                  "card, learning curve)", build_parser)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("ship", COMMAND)
