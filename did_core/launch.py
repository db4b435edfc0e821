"""``did train --nproc P``: the same training on ``P`` processes of this machine, started by torchrun's launcher.

It is ``torchrun --standalone --nproc-per-node P -m did_core.cli train ...`` (this command's
arguments minus ``--nproc``), run inside this process: torchrun's elastic agent starts the
workers and watches them, and this process turns its outcome into an exit status and at
most one line (no launcher traceback). Several nodes use torchrun directly (README, "Scale").
Before anything starts, the caller checks what it can alone (the config, the run directory)
and fixes the run directory (``--run-dir``), so every process agrees on it.

Signals: torchrun starts each worker in its own session, so the terminal's Ctrl-C reaches
the agent here, which passes it on once to every worker; the workers stop at the same step
boundary with a checkpoint (they have 30 s before the agent kills them) and rank 0 says where.
"""

from __future__ import annotations

import os
import signal
import sys

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

__all__ = ["without_nproc", "torchrun_arguments", "torchrun_command", "launch"]

_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)]


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the workers' own arguments)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def torchrun_arguments(argv: list[str], nproc: int) -> list[str]:
    """torchrun's arguments that run ``did <argv>`` on ``nproc`` processes of this machine."""
    return ["--standalone", f"--nproc-per-node={nproc}", "-m", "did_core.cli", *argv]


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """The equivalent shell command (what README shows; :func:`launch` runs it in this process)."""
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_arguments(argv, nproc)]


def launch(argv: list[str], nproc: int) -> int:
    """Run ``did <argv>`` under torchrun on ``nproc`` processes; return the exit status.

    0 when every process succeeded; 130 after Ctrl-C or SIGTERM; otherwise the first
    failing process's status (each process printed its own error). ``OMP_NUM_THREADS``
    defaults to this machine's CPUs shared among the processes.
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    try:
        torchrun.run(torchrun.parse_args(torchrun_arguments(argv, nproc)))
        return 0
    except SignalException:
        return 130
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        status = next((f.exitcode for _, f in failures if f.exitcode > 0), 1)
        crashed = [rank for rank, f in failures if f.exitcode < 0 or f.exitcode not in (1, 2, 130)]
        if crashed:  # killed by a signal or died without a did error line of its own
            print(f"did: error: process(es) of rank {', '.join(map(str, crashed))} ended with status "
                  f"{', '.join(str(f.exitcode) for r, f in failures if r in crashed)}", file=sys.stderr)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
