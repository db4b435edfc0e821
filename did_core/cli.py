"""The ``did`` command line: ``did COMMAND ...`` runs the command registered under that name.

Every command, the core's own (:mod:`did_core.commands`) as any plugin's, is
registered through ``did_register_commands`` as a callable ``(argv) -> exit code``
(:class:`did_core.console.Command`); this module looks the name up and turns what a
command raises into one line on stderr and an exit code:

* a user error (a malformed file, an unknown name, an invalid option or flag, a file
  the file system will not write): ``did: error: ...``, exit 2, nothing changed on disk;
* under torchrun, another rank's failure: exit 1 (the failing rank reports it);
* Ctrl-C: exit 130;
* standard output closed by its reader (``did ... | head -1``): no message, exit 141 (128 + SIGPIPE, what the
  shell reports for a command a closed pipe ends);
* anything else is a bug: ``did: error: WHERE: Type: message``, WHERE naming the plugin
  whose code raised it (or the core's function), exit 1; ``DID_TRACEBACK=1`` adds the
  traceback.

``did`` and ``did --help`` list every registered command with its one-line
description; ``did --version`` prints did-core's version. ``python -m did_core.cli``
is the same command line (torchrun starts ``-m did_core.cli train ...``).
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import textwrap
import traceback
import warnings
from collections.abc import Iterator
from importlib import metadata
from types import CodeType
from typing import Any

from did_core import __version__
from did_core.console import ArgumentParser, report_bug, report_error, warning_line
from did_core.plugins import CORE_DISTRIBUTION, load_plugins, registry
from did_core.registry import Entry

__all__ = ["main", "build_parser", "origin"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``did`` console script."""
    warnings.showwarning = warning_line
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a reader that is gone shows here, not in the interpreter's flush at exit
        return code
    except BrokenPipeError:
        return _pipe_closed()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error is one line; a bug says where it was raised
        code = report_error(exc)
        return code if code is not None else report_bug(exc, origin(exc))


#: The exit code when standard output's reader has gone: 128 + SIGPIPE, as the shell reports a command a closed pipe
#: ends (``yes | head -1``).
PIPE_CLOSED = 141


def _pipe_closed() -> int:
    """Standard output's reader has gone (``did ... | head -1``): stop quietly with :data:`PIPE_CLOSED`."""
    try:  # what is left in the buffer goes nowhere, so the interpreter's last flush raises nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (a test's capture)
        pass
    return PIPE_CLOSED


def _dispatch(argv: list[str]) -> int:
    """Run the command ``argv[0]`` on the rest; without one, the top-level flags (``--help``, ``--version``)."""
    if argv and not argv[0].startswith("-"):
        command = registry("commands").get(argv[0]).value  # an unknown name lists the known ones
        return int(command(argv[1:]) or 0)
    parser = _top_parser()
    parser.parse_args(argv)  # --help and --version exit; any other flag is an error
    parser.print_help()  # plain ``did``: what it can do, and no command given
    return 2


def _version() -> str:
    try:
        return metadata.version(CORE_DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return __version__


def _description(command: Any) -> str:
    """The line ``did --help`` shows for a command: its ``description``, else its docstring's first line."""
    text = getattr(command, "description", "") or (inspect.getdoc(command) if inspect.isroutine(command) else "")
    return (text or "").strip().split("\n", 1)[0]


def _listing(width: int) -> str:
    """Every registered command with its description: the core's, then those added by plugins."""
    entries = list(registry("commands"))
    own = [e for e in entries if e.provider == CORE_DISTRIBUTION]
    added = [e for e in entries if e.provider != CORE_DISTRIBUTION]
    indent = max([len(e.name) for e in entries] + [8]) + 4

    def line(entry: Entry, provider: bool = False) -> str:
        about = " ".join(s for s in (_description(entry.value), f"({entry.provider})" if provider else "") if s)
        return textwrap.fill(about or "-", width, initial_indent=f"  {entry.name}".ljust(indent),
                             subsequent_indent=" " * indent, break_on_hyphens=False)

    lines = ["commands:", *(line(e) for e in own)]
    if added:
        lines += ["", "commands added by plugins: " + ", ".join(e.name for e in added),
                  *(line(e, provider=True) for e in added)]
    return "\n".join(lines)


class _TopParser(ArgumentParser):
    """The parser of ``did`` itself; its help lists the registered commands (looked up only when shown)."""

    def format_help(self) -> str:
        width = max(shutil.get_terminal_size().columns - 2, 40)
        self.description = "Deep Incentive Design\n\n" + _listing(width)
        return super().format_help()


def _top_parser() -> ArgumentParser:
    """``did [-h] [--version]``, its help listing the registered commands."""
    parser = _TopParser(prog="did", usage="did [-h] [--version] COMMAND [ARGS ...]",
                        epilog="did COMMAND --help shows the options of COMMAND.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"did {_version()}",
                        help="show did-core's version and exit")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line as one parser, for documentation and tests: a subparser per registered command that
    shows its parser (:class:`did_core.console.Command` ``parser``).

    ``did`` itself never parses with it: it dispatches by name and each command parses its own arguments.
    """
    parser = _top_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry in registry("commands"):
        make = getattr(entry.value, "parser", None)
        if callable(make):
            sub.add_parser(entry.name, parents=[make()], add_help=False, help=_description(entry.value))
    return parser


def origin(exc: BaseException) -> str:
    """Where ``exc`` was raised: ``plugin DIST, in MODULE.FUNCTION`` for its innermost frame in code of a plugin
    (a function or method of something a plugin registers, else any function of a package it registers things
    from), else ``did-core, in MODULE.FUNCTION`` for its innermost frame in the core."""
    frames = [(frame.f_globals.get("__name__", "?"), frame.f_code) for frame, _ in traceback.walk_tb(exc.__traceback__)]
    try:
        codes, packages = _plugin_code()
    except Exception:  # noqa: BLE001 - the plugins cannot even load: the frames of the core say where
        codes, packages = {}, {}
    for module, code in reversed(frames):
        provider = codes.get(code) or packages.get(module.partition(".")[0])
        if provider is not None:
            return f"plugin {provider}, in {module}.{_qualname(code)}"
    for module, code in reversed(frames):
        if module.partition(".")[0] == "did_core":
            return f"{CORE_DISTRIBUTION}, in {module}.{_qualname(code)}"
    return CORE_DISTRIBUTION


def _qualname(code: CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+


def _plugin_code() -> tuple[dict[CodeType, str], dict[str, str]]:
    """The plugins' code, each with its distribution: the functions and methods of what they register, and the
    top-level packages these come from (the core's own left out)."""
    codes: dict[CodeType, str] = {}
    packages: dict[str, str] = {}
    installed = metadata.packages_distributions()
    for reg in load_plugins().registries.values():
        for entry in reg:
            if entry.provider == CORE_DISTRIBUTION:
                continue
            for thing in _made_of(entry.value):
                for function in _functions(thing):
                    codes.setdefault(function.__code__, entry.provider)
                package = (getattr(thing, "__module__", None) or "").partition(".")[0]
                # not the standard library's or another distribution's (a task's Path, a tensor)
                if package and package not in sys.stdlib_module_names and entry.provider in installed.get(
                        package, [entry.provider]):
                    packages.setdefault(package, entry.provider)
    return codes, packages


def _made_of(value: Any) -> Iterator[Any]:
    """The classes and functions a registered value is made of: itself, else its class and its attributes' (a
    task's sampler and objective, a command's function)."""
    if inspect.isclass(value) or inspect.isroutine(value):
        yield value
        return
    yield type(value)
    for item in getattr(value, "__dict__", {}).values():
        yield item if inspect.isclass(item) or inspect.isroutine(item) else type(item)


def _functions(thing: Any) -> Iterator[Any]:
    """A function itself, or the functions a class defines (its methods, static and class methods too)."""
    members = vars(thing).values() if inspect.isclass(thing) else [thing]
    for member in members:
        function = getattr(member, "__func__", member)
        if inspect.isfunction(function):
            yield function


if __name__ == "__main__":
    sys.exit(main())
