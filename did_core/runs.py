"""Run directories: atomic files, checkpoints, metrics, TensorBoard and progress.

A run directory holds ``config.yaml`` (the resolved config), ``checkpoint.pt``
(written atomically: temp file then rename), ``metrics.json`` (periodic
records), TensorBoard event files under ``tb/`` and task reports. Checkpoints
hold only tensors and plain Python data, so they load with ``weights_only=True``.

A write the file system refuses (no permission, a read-only file system, a full
disk) is an :class:`UnwritableFile` naming the file and the reason, and leaves
no partial file behind; :meth:`RunDir.acquire` finds an unwritable directory
before a command starts its work.

Every file a command writes where the user says (``did eval --out``, ``did ship``'s
folder, a benchmark's ``--out``) goes through one check, :func:`output_file` (a
folder: :func:`output_folder`), before any work: its directory exists, it is not a
directory, device, FIFO or socket, and it is not inside a run directory or a shipped
generator's folder (:func:`run_holding`) unless the command's ``--force`` says so.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_files", "json_text", "RunDir", "RunDirError",
           "UnwritableFile", "OutputRefused", "output_file", "output_folder", "run_holding", "publish_folder",
           "Progress", "new_run_path"]


class RunDirError(ValueError):
    """A run directory cannot be used as asked (in use, holds another run, or resumed with another config)."""


class UnwritableFile(ValueError):
    """A file or folder the file system will not write (no permission, read-only, full): path and reason."""


class OutputRefused(ValueError):
    """A path a command was told to write that it will not write (see :func:`output_file`); one line."""


def _unwritable(what: str, path: Path, exc: OSError) -> UnwritableFile:
    return UnwritableFile(f"cannot {what} {path}: {exc.strerror or exc}")


def _staged(path: Path, data: bytes) -> Path:
    """``data`` in a new, synced temporary file next to ``path`` (none is left behind when writing fails)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise _unwritable("write", path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())  # the mode an ordinary file would get, not mkstemp's 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable("write", path, exc) from None
        raise
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a partial one.

    A write the file system refuses is an :class:`UnwritableFile`, and ``path`` stays as it was.
    """
    path = Path(path)
    tmp = _staged(path, data)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _unwritable("write", path, exc) from None


def atomic_write_files(files: dict[Path, bytes]) -> None:
    """Write several files, each as :func:`atomic_write_bytes` does; every one is staged and synced before the
    first is replaced, so a refused write (a full disk) leaves all of them as they were."""
    staged: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            staged[Path(path)] = _staged(Path(path), data)
        for path in list(staged):
            try:
                os.replace(staged[path], path)
            except OSError as exc:
                raise _unwritable("write", path, exc) from None
            del staged[path]
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON of a run's files, with a final newline."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in a word or two."""
    for test, word in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "not a regular file"


def run_holding(path: Path) -> Path | None:
    """The run directory or shipped generator's folder that is ``path`` or holds it (``None``: there is none).

    A folder is one when it holds a ``checkpoint.pt`` (every run that trained a step,
    every shipped folder), or a ``config.yaml`` with the ``.lock`` of a run being
    written (:meth:`RunDir.acquire`).
    """
    for folder in (Path(os.path.abspath(path)), *Path(os.path.abspath(path)).parents):
        if (folder / RunDir.CHECKPOINT).is_file() or ((folder / RunDir.CONFIG).is_file()
                                                      and (folder / RunDir.LOCK).exists()):
            return folder
    return None


def _check_parent(path: Path, flag: str) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise OutputRefused(f"{flag} {path}: directory {parent} does not exist" if not parent.exists()
                            else f"{flag} {path}: {parent} is not a directory")


def output_file(path: Path, flag: str = "--out", force: bool = False, force_flag: str | None = "--force") -> Path:
    """``path`` checked as a file a command may write (``flag`` names it in a message), before any work is done.

    Refused (an :class:`OutputRefused`): a missing or non-directory parent (no folder is
    created); a path that exists and is not a regular file (a directory, a device such as
    ``/dev/full``, a FIFO: it would be replaced by a file); and, unless ``force``, a path
    inside a run directory or a shipped generator's folder (:func:`run_holding`), whose
    files belong to ``did train``, ``did eval`` and ``did ship`` (the message offers
    ``force_flag``, where the command has one).
    """
    path = Path(path)
    _check_parent(path, flag)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _unwritable("write", path, exc) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputRefused(f"{flag} {path} is {_kind(mode)}, not a regular file; name a file to write")
    holder = None if force else run_holding(path.parent)
    if holder is not None:
        raise OutputRefused(f"{flag} {path} is inside {holder}, a run directory or shipped generator whose files "
                            f"did train, did eval and did ship write; choose a path outside it"
                            + (f" ({force_flag} writes there anyway)" if force_flag else ""))
    return path


def output_folder(path: Path, flag: str, force: bool = False) -> Path:
    """``path`` checked as a folder a command may create or replace: its parent exists, it is a directory if it
    exists, and, unless ``force``, no run directory or shipped folder holds its parent (an
    :class:`OutputRefused` otherwise). Whether an existing folder may be replaced is the caller's to decide."""
    path = Path(path)
    _check_parent(path, flag)
    if path.exists() and not path.is_dir():
        raise OutputRefused(f"{flag} {path} exists and is not a directory")
    holder = None if force else run_holding(path.parent)
    if holder is not None:
        raise OutputRefused(f"{flag} {path} is inside {holder}, a run directory or shipped generator; choose a "
                            f"folder outside it (--force writes there anyway)")
    return path


def publish_folder(dest: Path, fill: Callable[[Path], None]) -> None:
    """Create or replace the folder ``dest`` as a whole: ``fill`` writes its files into a new temporary folder
    beside it, which then takes its place (the folder it replaces is removed after).

    Until ``fill`` has returned nothing at ``dest`` changes; if it raises, the temporary
    folder is removed. An existing ``dest`` is checked by the caller (:func:`output_folder`).
    """
    dest = Path(dest)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    except OSError as exc:
        raise _unwritable("create a folder in", dest.parent, exc) from None
    old: Path | None = None
    try:
        os.chmod(staging, 0o777 & ~_umask())  # the mode a folder made by mkdir would get, not mkdtemp's 0700
        fill(staging)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.rename(dest, old / dest.name)
        os.rename(staging, dest)
    except OSError as exc:
        if old is not None and not dest.exists():
            os.rename(old / dest.name, dest)  # put the previous folder back
        raise _unwritable("write", dest, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def new_run_path(root: Path, label: str) -> Path:
    """A fresh timestamped folder name under ``root`` (not created)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / f"{stamp}-{label}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = Path(root) / f"{stamp}-{label}-{suffix}"
    return candidate


class RunDir:
    """One run's folder and its files."""

    CONFIG = "config.yaml"
    CHECKPOINT = "checkpoint.pt"
    METRICS = "metrics.json"

    LOCK = ".lock"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock: int | None = None

    def create(self) -> "RunDir":
        """Create the folder (parents too)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable("create run directory", self.path, exc) from None
        return self

    def holds_run(self) -> bool:
        """Does the folder already hold a run (its config or a checkpoint)?"""
        return self.file(self.CONFIG).exists() or self.file(self.CHECKPOINT).exists()

    def check_new(self) -> None:
        """Refuse, before anything is written, to start a new run where one exists or where a file is."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} is not a directory")
        if self.holds_run():
            raise RunDirError(f"run directory {self.path} already holds a run; continue it with "
                              f"did train --resume {self.path}, or choose another --run-dir")

    def acquire(self) -> "RunDir":
        """Create the folder and hold its lock for the life of this process (one writer per run).

        The lock (``fcntl.flock`` on ``.lock``, released by the system when the process ends,
        also on a crash) is a ``RunDirError`` when another process holds it. A folder this
        process cannot write in is an :class:`UnwritableFile`, before any work is done.
        """
        import fcntl  # optional: POSIX only (an import at the top would keep the module off other systems)

        self.create()
        try:
            tempfile.TemporaryFile(dir=self.path).close()  # can files be created here? (permissions, read-only)
            fd = os.open(self.file(self.LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _unwritable("write in run directory", self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunDirError(f"run directory {self.path} is in use by another did process (pid {owner})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = fd
        return self

    def release(self) -> None:
        """Give the lock back (also done by the system when the process ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def file(self, name: str) -> Path:
        """Path of a file in the run directory."""
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        """Atomically write ``obj`` as indented JSON."""
        target = self.file(name)
        atomic_write_text(target, json_text(obj))
        return target

    def replace_keeping_previous(self, texts: dict[str, str]) -> list[str]:
        """Write the files ``name -> text`` together, keeping each existing one as ``<stem>.previous<suffix>``.

        Every new file is written and synced before an old one moves, so a refused write (a
        full disk) leaves the folder as it was. Returns the names whose old version was kept.
        """
        staged: dict[str, Path] = {}
        try:
            for name, text in texts.items():
                staged[name] = _staged(self.file(name), text.encode("utf-8"))
            kept = [name for name in texts if self.file(name).is_file()]
            for name in texts:
                if name in kept:
                    os.replace(self.file(name), self.file(f"{Path(name).stem}.previous{Path(name).suffix}"))
                os.replace(staged.pop(name), self.file(name))
        except OSError as exc:
            raise _unwritable("write in run directory", self.path, exc) from None
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        return kept

    def write_yaml(self, name: str, obj: Any) -> Path:
        """Atomically write ``obj`` as YAML (keys in their given order)."""
        target = self.file(name)
        atomic_write_text(target, yaml.safe_dump(obj, sort_keys=False))
        return target

    def read_json(self, name: str) -> Any:
        """Read a JSON file of the run."""
        return json.loads(self.file(name).read_text())

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically save a checkpoint (tensors and plain data only)."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.file(self.CHECKPOINT), buffer.getvalue())

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, loaded without executing code; ``None`` if there is none.

        A file that is not a readable checkpoint of this framework (truncated, foreign,
        a pickle that would run code, no model) is a one-line ``RunDirError``.
        """
        path = self.file(self.CHECKPOINT)
        if not path.exists():
            return None
        if not path.is_file():
            raise RunDirError(f"checkpoint {path} is not a regular file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for damaged or unsafe files
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunDirError(f"checkpoint {path} cannot be read (damaged, or not a did checkpoint): "
                              f"{detail[:200]}") from None
        if not isinstance(state, dict) or "model" not in state:
            raise RunDirError(f"checkpoint {path} is not a did checkpoint (no model)")
        return state

    def load_model(self, module: torch.nn.Module, state: dict[str, Any]) -> None:
        """Load the ``model`` of this run's checkpoint ``state`` into ``module``.

        A checkpoint that does not fit (the run's config.yaml edited, or the code changed since)
        is a one-line ``RunDirError`` naming the first mismatch.
        """
        try:
            module.load_state_dict(state["model"])
        except RuntimeError as exc:
            detail = " ".join(str(exc).strip().splitlines()[:2])
            raise RunDirError(f"checkpoint in {self.path} does not fit this model (was its config.yaml edited?): "
                              f"{detail}") from None

    def metrics(self) -> list[dict[str, Any]]:
        """The periodic metric records written so far."""
        path = self.file(self.METRICS)
        return json.loads(path.read_text()) if path.exists() else []

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Atomically replace the metric records."""
        self.write_json(self.METRICS, records)


class Progress:
    """A one-line progress display: step, loss and ETA (a carriage-return bar on a terminal)."""

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, label: str = "train") -> None:
        self.total, self.start, self.label = total, start, label
        self.stream = stream or sys.stderr
        self.began = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_line = 0.0

    def update(self, step: int, scalars: dict[str, float], force: bool = False) -> None:
        """Show progress after ``step`` steps (rate-limited unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_line < (0.2 if self.tty else 5.0) and step < self.total:
            return
        self._last_line = now
        done = step - self.start
        rate = done / max(now - self.began, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else math.inf
        parts = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        line = f"{self.label} [{bar}] {step}/{self.total} {parts} {rate:.2f} it/s ETA {_duration(eta)}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if step >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
