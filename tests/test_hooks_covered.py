"""Every hook spec is tested and documented (grep-based, after datasette's test_plugin_hooks_are_documented).

For every ``did_register_*`` hook in did_core/hookspecs.py: some test file under
tests/ (other than this one) must register through it, and README.md or
docs/*.md must mention it. A new hook fails here, by name, until both exist.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from did_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("did_register_"))

#: Hooks known to be missing from README.md and docs/*.md: their check is a strict xfail until documented.
UNDOCUMENTED: set[str] = set()


def _text(paths) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths}


def test_the_hook_specs_are_found():
    assert len(HOOKS) >= 7 and "did_register_blocks" in HOOKS, HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_registered_through_in_a_test(hook):
    files = _text(p for p in sorted((ROOT / "tests").rglob("test_*.py")) if p.resolve() != Path(__file__).resolve())
    users = [name for name, text in files.items() if hook in text]
    assert users, f"no test under tests/ registers through the hook {hook} (add one that registers and uses it)"


@pytest.mark.parametrize("hook", [pytest.param(h, marks=pytest.mark.xfail(
    strict=True, reason=f"{h} is not documented yet in README.md or docs/*.md")) if h in UNDOCUMENTED else h
    for h in HOOKS])
def test_hook_is_documented(hook):
    docs = _text([ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    assert any(hook in text for text in docs.values()), f"the hook {hook} is not mentioned in README.md or docs/*.md"
