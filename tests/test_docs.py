"""The documentation: it builds without warnings, its code examples run, and its CLI reference is complete."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

import toys
from did_core.cli import build_parser
from did_core.plugins import registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: A line ``--8<-- "path"`` (pymdownx.snippets, mkdocs.yml): the repository file ``path`` in its place.
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)


def _page(page: Path) -> str:
    """A page as the reader sees it: every included file in place of its ``--8<--`` line."""
    return SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text().rstrip("\n"), page.read_text())


def _examples(page: Path) -> list[tuple[str, Path | None]]:
    """A page's Python examples in order: each one's code and, for an included file, its path."""
    out = []
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
        included = SNIPPET.fullmatch(block.strip())
        path = ROOT / included.group(1) if included else None
        out.append((path.read_text() if path else block, path))
    return out


def _example_plugins(monkeypatch, stack: ExitStack) -> None:
    """The three example plugins of examples/ installed for the rest of a test, as the plugin guide's reader has
    them (pip install -e): their folders on the path, their hooks found as the entry points their pyprojects
    declare."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
    for folder in sorted((ROOT / "examples").glob("third_party_*")):
        monkeypatch.syspath_prepend(str(folder))
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        for name, module in project["entry-points"]["did"].items():
            stack.enter_context(toys.installed(importlib.import_module(module), name, project["name"]))


@pytest.mark.parametrize("page", [p for p in PAGES if "```python" in p.read_text()], ids=lambda p: p.name)
def test_every_code_example_runs(page, monkeypatch):
    """The Python examples of a page run in order, in one namespace, as a reader would paste them (an included
    file runs with its ``__file__``); the plugin guide's with the example plugins installed. The pages are written
    for a reader who installed the repository's plugins (the exact blocks among them)."""
    if "exact_newton" not in registry("blocks"):
        pytest.skip("the pages' examples use the exact blocks of did-plugins-exact-cvx, which are not loaded")
    namespace: dict = {}
    with ExitStack() as stack:
        if page.name == "plugins.md":
            _example_plugins(monkeypatch, stack)
        for i, (code, path) in enumerate(_examples(page)):
            namespace.pop("__file__", None)
            namespace.update({"__file__": str(path)} if path else {})
            exec(compile(code, str(path) if path else f"{page.name}, example {i + 1}", "exec"), namespace)


def test_plugin_guide_walks_through_every_file_of_the_example_plugins():
    """The guide includes the example packages' code and data themselves (one copy, never a diverging one): every
    Python file, the example instance and the pyprojects of the block and the task."""
    text = (DOCS / "plugins.md").read_text()
    included = set(SNIPPET.findall(text))
    assert all((ROOT / path).is_file() for path in included)
    files = {str(p.relative_to(ROOT)) for suffix in ("py", "json")
             for p in ROOT.glob(f"examples/third_party_*/**/*.{suffix}") if "shipped" not in p.parts}
    assert len(files) >= 7 and files | {"examples/third_party_block/pyproject.toml",
                                        "examples/third_party_task/pyproject.toml"} <= included


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("mkdocstrings")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "api" / "blocks" / "index.html").is_file()
    # Docstrings name objects with Sphinx roles; the API reference shows them as code, never the raw role.
    raw = [f"{page.relative_to(tmp_path)}: {role}" for page in (tmp_path / "site" / "api").rglob("*.html")
           for role in re.findall(r":(?:class|func|meth|mod|data|attr|exc):", page.read_text())]
    assert not raw, raw[:5]


def _flags(parser) -> dict[str, set[str]]:
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: {s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
            for name, sub in commands.choices.items()}


def test_cli_reference_names_every_command_and_flag():
    text = (DOCS / "cli.md").read_text()
    for command, flags in _flags(build_parser()).items():
        assert f"`did {command}" in text, command
        missing = sorted(f for f in flags if f"`{f}" not in text)
        assert not missing, f"docs/cli.md does not describe did {command} {', '.join(missing)}"


def test_nothing_points_outside_the_repository():
    """Documents and docstrings explain themselves: no reference to files beside the checkout."""
    sources = [*DOCS.rglob("*.md"), ROOT / "README.md", *ROOT.glob("did_core/**/*.py"), *ROOT.glob("plugins/*/*/*.py"),
               *(p for p in ROOT.glob("examples/third_party_*/*") if p.is_file())]
    offenders = [str(p.relative_to(ROOT)) for p in sources if re.search(r"\.\./shared|SPEC\.md|SPEC section", p.read_text())]
    assert not offenders
