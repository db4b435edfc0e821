"""Test helpers for DID and its plugins' own tests: the independent CE/CCE reference solver and a check that
``did design`` refuses a malformed instance file.

Both live in the contract-test kit (:mod:`did_core.plugin_checks`), which holds every check written once:
:func:`reference_rows`, :func:`reference_scale` and :func:`reference_solve` are
:mod:`did_core.plugin_checks.reference`'s (``reference_solve`` needs cvxpy: ``pip install
'did-core[testing]'``), :func:`assert_design_refuses` asserts
:func:`did_core.plugin_checks.commands.design_refusal`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from did_core.plugin_checks.commands import design_refusal
from did_core.plugin_checks.reference import reference_rows, reference_scale, reference_solve

__all__ = ["reference_rows", "reference_scale", "reference_solve", "assert_design_refuses"]


def assert_design_refuses(task: str, path: Path, content: Any, capsys: Any = None) -> None:
    """``did design TASK path`` on a malformed instance: exit 2, one ``did: error:`` line naming the file, nothing
    on stdout and nothing written beside the file.

    ``content`` is written to ``path`` first: text as it is, another value as JSON, ``None`` as a directory.
    ``capsys`` (pytest's fixture) is not needed: the command's output is captured where it runs.
    """
    problem = design_refusal(task, path, content)
    assert problem is None, problem
