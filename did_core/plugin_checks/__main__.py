"""``python -m did_core.plugin_checks [DISTRIBUTION] [--block B] [--concept C] [--task T] [--quick]``: run the
kit's checks and print one line per check; exit code 1 when one fails, 2 for a usage error."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from did_core.console import ArgumentParser, fail, nonempty
from did_core.plugin_checks.checks import Outcome
from did_core.plugin_checks.collect import collect

__all__ = ["build_parser", "main", "table_row"]


def build_parser() -> ArgumentParser:
    """The arguments of ``python -m did_core.plugin_checks``."""
    parser = ArgumentParser(prog="python -m did_core.plugin_checks",
                            description="Check the equilibrium blocks, concepts and tasks a DID plugin registers.")
    parser.add_argument("distribution", nargs="?", type=nonempty, metavar="DISTRIBUTION",
                        help="check everything this installed distribution registers (e.g. did-example-block)")
    for kind in ("block", "concept", "task"):
        parser.add_argument(f"--{kind}", dest=f"{kind}s", action="append", default=[], type=nonempty,
                            metavar="NAME", help=f"also check the registered {kind} NAME (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller gradchecks, fewer optimisation steps and evaluation contexts")
    return parser


def table_row(outcome: Outcome, width: int) -> str:
    """One row: the status, the check (padded to ``width``) and, unless it passed, the reason."""
    return f"{outcome.status:<4}  {str(outcome.check):<{width}}  {outcome.reason}".rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks that ``argv`` selects (everything registered when it selects none)."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        checks = collect(args.distribution, blocks=args.blocks, concepts=args.concepts, tasks=args.tasks,
                         quick=args.quick)
    except ValueError as error:  # a usage error, an unknown name or distribution: one line
        return fail(str(error))
    width = max((len(str(check)) for check in checks), default=0)
    outcomes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a check judges what a block's warning says; one row per check
        for check in checks:
            outcomes.append(check.run())
            print(table_row(outcomes[-1], width), flush=True)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("PASS", "FAIL", "SKIP")}
    print(f"{len(outcomes)} checks: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
          f"(not applicable)")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
