"""What every command shows on the console, low enough for any plugin to import: one-line errors and
warnings, argument parsing, and joints as text.

Every user error of a command (a malformed file, an unknown name, an invalid
option or flag, a file the file system will not write) is one line ``did: error:
...`` on stderr with exit code 2; a bug (an exception no command expects, in a
plugin or in the core) is one line naming where it was raised, with exit code 1
(its traceback too with ``DID_TRACEBACK=1``). A command parses its arguments with
:class:`ArgumentParser` (its errors are such a line) and flag types such as
:func:`nonempty` and :func:`yaml_mapping`; it is registered as a :class:`Command`
(or any ``(argv) -> int`` callable). Commands, task plugins' instance formats and
reports share :func:`format_joint` and :func:`joint_lines`, so a joint reads the
same wherever it is printed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

from did_core import distributed
from did_core.distributed import PeerError
from did_core.files import YamlError, YamlRefused, parse_yaml, shown

__all__ = ["Command", "ArgumentParser", "UsageError", "USER_ERRORS", "nonempty", "bounded_int", "finite_float",
           "positive_float", "yaml_mapping", "yaml_value",
           "fail", "os_error", "report_error", "report_bug", "warning_line", "format_joint", "joint_lines"]

#: Every user error is a ``ValueError``: a config, an unknown or duplicate name, a malformed file or flag
#: (``did_core.config.ConfigError``, ``did_core.registry.UnknownNameError`` / ``DuplicateNameError``,
#: ``did_core.files.UnreadableFile``, :class:`UsageError`, ...). One line, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ValueError,)


@dataclass(frozen=True)
class Command:
    """A ``did`` subcommand as a plugin registers it (``did_register_commands``): ``main(argv) -> exit code``.

    ``argv`` is what follows the command's name. ``description`` is the line ``did --help`` and
    ``did plugins`` show; ``parser`` (optional) builds the :class:`ArgumentParser` ``main`` parses
    with, so that documentation and tests see its flags (``did_core.cli.build_parser``). A plain
    ``(argv) -> int`` callable is a command too (``did --help`` shows its docstring's first line).
    """

    main: Callable[[list[str]], int]
    description: str = ""
    parser: Callable[[], argparse.ArgumentParser] | None = None

    def __call__(self, argv: list[str]) -> int:
        return self.main(argv)


class UsageError(ValueError):
    """A command line its parser refuses (an unknown flag, a value of the wrong type, a missing argument)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are a :class:`UsageError`: one line ``did: error: COMMAND:
    message (see did COMMAND --help)``, no usage text (``prog`` is ``"did COMMAND"``)."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("did ") if self.prog != "did" else ""
        raise UsageError(f"{where + ': ' if where else ''}{message} (see {self.prog} --help)")


def nonempty(text: str) -> str:
    """An argparse ``type`` for a name or path: an empty one (an unset shell variable) is refused, not the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (leave the flag out for its default)")
    return text


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside [{low}, {high}]")
        return value
    return parse


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not > 0")
    return value


def yaml_mapping(text: str) -> dict[str, Any]:
    """An argparse ``type``: a flag's options as a YAML mapping, e.g. ``'{max_memory_gb: 32}'`` (``'{}'``: none)."""
    try:
        value = parse_yaml(nonempty(text))
    except YamlRefused as exc:  # a duplicate key, or aliases that repeat too much
        raise argparse.ArgumentTypeError(f"{shown(text)} {exc}") from None
    except YamlError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a YAML mapping of options such as "
                                         f"'{{max_memory_gb: 32}}'")
    return value


def yaml_value(text: str) -> Any:
    """An argparse ``type``: a flag's value read as YAML (``3``, ``1e-3``, ``{width: 64}``); text that is not
    YAML stays a string, an empty value (an unset shell variable) is refused, not read as null."""
    try:
        return parse_yaml(nonempty(text))
    except YamlRefused as exc:  # a duplicate key, or aliases that repeat too much
        raise argparse.ArgumentTypeError(f"{shown(text)} {exc}") from None
    except YamlError:
        return text


def _error_line(message: str, rank: int) -> None:
    print(f"did: error: {f'(rank {rank}) ' if rank else ''}{' '.join(str(message).split())}", file=sys.stderr)


def fail(message: str, own: bool = False) -> int:
    """Print one error line and return the usage exit code.

    Under torchrun every rank decides alike on the same arguments, so rank 0 alone prints, unless the
    error is this rank's ``own`` (raised here), which it prints with its rank.
    """
    rank = distributed.current().rank
    if rank == 0 or own:
        _error_line(message, rank)
    return 2


def os_error(exc: OSError) -> str:
    """An error of the operating system as ``FILE: reason`` (the file it names, if any)."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def report_error(exc: Exception) -> int | None:
    """Print the line of an error a command expects and return its exit code; ``None`` for any other (a bug).

    Another rank's failure (:class:`~did_core.distributed.PeerError`): exit 1, rank 0 adding what became
    of the run; a user error (:data:`USER_ERRORS`) or a refusal of the file system: one line, exit 2.
    """
    if isinstance(exc, PeerError):
        if exc.report:
            fail(str(exc))
        return 1
    if isinstance(exc, USER_ERRORS):
        return fail(str(exc), own=True)
    if isinstance(exc, OSError):  # a missing file, no permission, a full disk
        return fail(os_error(exc), own=True)
    return None


def report_bug(exc: BaseException, where: str) -> int:
    """One line ``did: error: WHERE: Type: message`` for an exception no command expects; exit code 1.

    ``DID_TRACEBACK=1`` prints the traceback before it. Each rank prints its own.
    """
    if os.environ.get("DID_TRACEBACK") == "1":
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        hint = ""
    else:
        hint = " (DID_TRACEBACK=1 shows the traceback)"
    _error_line(f"{where}: {type(exc).__name__}: {exc}{hint}", distributed.current().rank)
    return 1


def warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """A ``warnings.showwarning``: one ``did: warning: ...`` line, without the source location a CLI user cannot
    act on."""
    print(f"did: warning: {message}", file=sys.stderr)


def format_joint(sigma: torch.Tensor, players: Sequence[str] | None = None,
                 actions: Sequence[Sequence[str]] | None = None) -> str:
    """A joint ``[A_1..A_N]`` as text: a matrix (rows player 1, columns player 2) or one line per joint action.

    Actions are shown by their labels (``actions[p][a]``) under the players' names,
    or numbered from 1 as ``a1=1``.
    """
    def label(p: int, a: int) -> str:
        if actions is None:
            return f"a{p + 1}={a + 1}"
        return actions[p][a] if sigma.dim() == 2 or players is None else f"{players[p]}={actions[p][a]}"

    if sigma.dim() == 2:
        first = max([6] + [len(label(0, r)) + 2 for r in range(sigma.shape[0])])
        width = max([10] + [len(label(1, d)) + 2 for d in range(sigma.shape[1])])
        corner = f"{players[0]} \\ {players[1]}" if players is not None and actions is not None else ""
        first = max(first, len(corner) + 2)
        rows = [f"{corner:<{first}}" + "".join(f"{label(1, d):>{width}}" for d in range(sigma.shape[1]))]
        rows += [f"{label(0, r):<{first}}" + "".join(f"{float(v):>{width}.6f}" for v in sigma[r])
                 for r in range(sigma.shape[0])]
        return "\n".join(rows)
    lines = []
    for index in torch.cartesian_prod(*[torch.arange(n) for n in sigma.shape]).reshape(-1, sigma.dim()).tolist():
        lines.append("  " + ", ".join(label(p, i) for p, i in enumerate(index))
                     + f": {float(sigma[tuple(index)]):.6f}")
    return "\n".join(lines)


def joint_lines(players: Sequence[str], actions: Iterable[Sequence[str]], sigma: torch.Tensor) -> list[str]:
    """A joint ``[A_1..A_N]`` as a header and one line per joint action, by name (the last player's action
    varying fastest, as the joint's entries are stored)."""
    labels = [", ".join(combo) for combo in itertools.product(*actions)]
    header = ", ".join(players)
    width = max(len(header), *(len(label) for label in labels))
    lines = [f"{header:<{width}}  P"]
    for label, p in zip(labels, sigma.reshape(-1).tolist()):
        lines.append(f"{label:<{width}}  {p:.4f}")
    return lines
