"""Helpers of the tests that run a script of ``benchmarks/`` (not a package): import it by its path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "benchmark_module"]

ROOT = Path(__file__).resolve().parents[1]


def benchmark_module(name: str) -> ModuleType:
    """The module of ``benchmarks/NAME.py``, freshly executed (registered in ``sys.modules`` as ``NAME``, which a
    dataclass in it needs)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
