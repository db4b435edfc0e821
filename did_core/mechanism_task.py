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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from did_core.files import UnreadableFile, read_json_file, shown
from did_core.runs import RunDir, RunDirError, new_run_path

__all__ = ["MechanismTask", "CommandFn", "RUN_CONFIG", "start_run", "read_run_config", "run_task_name",
           "option_value"]

#: One command of a mechanism task: ``(argv) -> exit code``.
CommandFn = Callable[[list[str]], int]

#: The file of a mechanism task's run directory that names its task (``{"task": NAME, ...}``).
RUN_CONFIG = "config.json"
#: The most bytes a run's ``config.json`` may hold.
CONFIG_LIMIT = 1 << 20


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


def start_run(run_dir: str | Path | None, task: str, config: dict[str, Any], label: str | None = None) -> RunDir:
    """A new run folder of the mechanism task ``task`` (``run_dir``, else ``runs/<stamp>-<label>``), locked by this
    process, holding ``config.json`` = ``{"task": task, **config}``; a ``RunDirError`` where a run already is."""
    run = RunDir(Path(run_dir) if run_dir else new_run_path(Path("runs"), label or task))
    run.check_new()
    if run.file(RUN_CONFIG).exists():
        raise RunDirError(f"run directory {run.path} already holds a run; continue it with did train --resume "
                          f"{run.path}, or choose another --run-dir")
    run.acquire()
    run.write_json(RUN_CONFIG, {"task": task, **config})
    return run


def read_run_config(folder: str | Path, task: str) -> dict[str, Any]:
    """The ``config.json`` of the run of mechanism task ``task`` in ``folder``: a ``RunDirError`` when the folder
    holds none naming ``task``, an ``UnreadableFile`` naming the file when it cannot be read."""
    path = Path(folder) / RUN_CONFIG
    if not path.is_file():
        raise RunDirError(f"{shown(str(folder))} is not a run of the task {task!r} (no {RUN_CONFIG})")
    try:
        data = read_json_file(path, CONFIG_LIMIT)
    except UnreadableFile as exc:
        raise UnreadableFile(f"{shown(str(path))} {exc}") from None
    if not isinstance(data, dict) or data.get("task") != task:
        raise RunDirError(f"{shown(str(folder))} is not a run of the task {task!r} ({RUN_CONFIG} names another)")
    return data


def run_task_name(folder: str | Path) -> str | None:
    """The task a mechanism task's run directory names in its ``config.json``; ``None`` when ``folder`` holds
    none, or one that cannot be read (the game commands then report on the folder as usual)."""
    path = Path(folder) / RUN_CONFIG
    try:
        data = read_json_file(path, CONFIG_LIMIT) if path.is_file() else None
    except (OSError, UnreadableFile):
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
