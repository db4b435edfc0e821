"""Fixtures of the reliability tests: one finished toy run, shared read-only by every module, and the environment
of a ``did`` console script that sees the toy plugin."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import distributed_helpers
import toys
from did_core.config import resolve_train_config
from did_core.train import train
from run_helpers import TINY


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """A finished run of :data:`run_helpers.TINY` (config, checkpoint, metrics, eval.json); copy it to change it."""
    path = tmp_path_factory.mktemp("toy_run") / "run"
    with toys.toy_plugins():  # session fixtures are set up before the toys of the module that asks
        train(resolve_train_config(TINY), path)
    return path


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory) -> Path:
    """A ``PYTHONPATH`` folder declaring the toys (tests/toys.py) an installed plugin (see
    :func:`run_helpers.console_env`)."""
    return distributed_helpers.toy_site(tmp_path_factory.mktemp("toy_site"))


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: every file created (or opened for writing) under ``folder`` fails from then on as on a
    read-only file system (``EROFS``), also for root, whom permissions do not stop."""
    real_open = os.open

    def refuse_under(folder: Path) -> None:
        def open_(path, flags, *args, **kwargs):
            if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_)

    return refuse_under
