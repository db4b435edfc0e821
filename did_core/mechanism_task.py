"""Design tasks whose participants are not solved as a game by an equilibrium block.

Most tasks change a game's payoffs and read the players' response from an
equilibrium block (:class:`did_core.tasks.Task`). A *mechanism task* designs the
rules instead, and its participants answer with a best response that the rules
make truthful (a menu's buyer, an affine maximizer's agents on an MDP): no game
is induced, so the core's game pipeline (induce, solve, guard, polish) does not
apply. Such a task brings its own ``train``, ``evaluate`` and ``design``, and the
core's commands hand them the command line:

* ``did train --task NAME ...`` and ``did train --resume RUN_DIR`` (``RUN_DIR`` a run of
  the task): ``train`` gets every argument after ``train``;
* ``did eval --shipped NAME ...`` and ``did eval RUN_DIR ...``: ``evaluate`` gets every
  argument after ``eval``;
* ``did design NAME ...``: ``design`` gets every argument after ``design``.

Each returns the exit code (a user error: one ``did: error:`` line and 2, as
:func:`did_core.console.fail` prints). A run directory of a mechanism task names
its task in ``config.json`` (``{"task": NAME, ...}``) so that ``did eval RUN_DIR`` and
``did train --resume RUN_DIR`` find it. Plugins register mechanism tasks through
the hook ``did_register_mechanisms``; their names share one namespace with the
game tasks (``did train --task`` takes either).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MechanismTask", "CommandFn", "RUN_CONFIG", "run_task_name", "option_value"]

#: One command of a mechanism task: ``(argv) -> exit code``.
CommandFn = Callable[[list[str]], int]

#: The file of a mechanism task's run directory that names its task (``{"task": NAME, ...}``).
RUN_CONFIG = "config.json"


@dataclass(frozen=True)
class MechanismTask:
    """A registered mechanism-design task: what it designs and its three commands.

    ``shipped``: the folder of the mechanisms the plugin ships (read by its own ``evaluate``
    and ``design``), or ``None``.
    """

    description: str
    train: CommandFn
    evaluate: CommandFn
    design: CommandFn
    shipped: Path | None = None


def run_task_name(folder: str | Path) -> str | None:
    """The task a mechanism task's run directory names in its ``config.json``; ``None`` when ``folder`` holds
    none, or one that cannot be read (the game commands then report on the folder as usual)."""
    path = Path(folder) / RUN_CONFIG
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("task") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def option_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag VALUE`` or ``--flag=VALUE``; the last one given), read before the
    command's own parser runs, to decide whose command line it is."""
    found = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(flag + "="):
            found = arg[len(flag) + 1:]
    return found
