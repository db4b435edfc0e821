"""One check of the kit: what it is about, whether it passed, and why not in one line.

A check is a function that returns when its subject keeps the promise, raises
:class:`CheckFailed` (or any other exception: a bug of the subject) when it does
not, and :class:`NotApplicable` when the promise does not concern the subject (a
task without instance files has none to read). :meth:`Check.run` turns that into
an :class:`Outcome`; :meth:`Check.assert_passes` into a pytest result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Outcome", "CheckFailed", "NotApplicable", "expect", "one_line"]

#: The longest reason an outcome shows (a plugin's error message may be long).
LONGEST = 400


class CheckFailed(AssertionError):
    """A subject that breaks a promise; the message (one line) says which and by how much."""


class NotApplicable(Exception):
    """A check whose promise does not concern its subject; the message (one line) says why."""


def expect(condition: object, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds (an ``assert`` that ``-O`` keeps)."""
    if not condition:
        raise CheckFailed(message)


def one_line(error: BaseException) -> str:
    """An exception as one line: its message (prefixed by its type unless it is a failed check), whitespace
    folded, cut to :data:`LONGEST` characters."""
    text = " ".join(str(error).split())
    if not isinstance(error, (CheckFailed, NotApplicable)):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= LONGEST else text[:LONGEST - 3] + "..."


@dataclass(frozen=True)
class Outcome:
    """What running a check gave: ``status`` and, unless it passed, the one-line ``reason``."""

    check: "Check"
    status: Literal["PASS", "FAIL", "SKIP"]
    reason: str = ""


@dataclass(frozen=True)
class Check:
    """One promise of one subject: ``function()`` checks it (see the module docstring).

    ``subject`` names what is checked (``"block scipy_dual with capped_cce"``, ``"task cournot"``),
    ``name`` the promise (``"agrees with an independent solver"``).
    """

    subject: str
    name: str
    function: Callable[[], None]

    def __str__(self) -> str:
        return f"{self.subject}: {self.name}"

    def run(self) -> Outcome:
        """Run the check; every exception it raises becomes a failed or skipped outcome with its one line."""
        try:
            self.function()
        except NotApplicable as reason:
            return Outcome(self, "SKIP", one_line(reason))
        except Exception as error:  # noqa: BLE001 - a plugin's bug is a failed check, reported in one line
            return Outcome(self, "FAIL", one_line(error))
        return Outcome(self, "PASS")

    def assert_passes(self) -> None:
        """Run the check under pytest: a failure raises as it would (with its traceback), a check that does not
        apply is skipped with its reason."""
        try:
            self.function()
        except NotApplicable as reason:
            import pytest  # optional: only a plugin's own test suite calls this

            pytest.skip(one_line(reason))
