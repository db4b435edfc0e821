"""The documentation: it builds without warnings, its code examples run, and its CLI reference is complete."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from did_core.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: A line ``--8<-- "path"`` (pymdownx.snippets, mkdocs.yml): the repository file ``path`` in its place.
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)


def _page(page: Path) -> str:
    """A page as the reader sees it: every included file in place of its ``--8<--`` line."""
    return SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text().rstrip("\n"), page.read_text())


def _examples(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", _page(page), re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if "```python" in p.read_text()], ids=lambda p: p.name)
def test_every_code_example_runs(page):
    """The Python examples of a page run in order, in one namespace, as a reader would paste them."""
    namespace: dict = {}
    for i, block in enumerate(_examples(page)):
        exec(compile(block, f"{page.name}, example {i + 1}", "exec"), namespace)


def test_plugin_guide_walks_through_every_file_of_the_example_plugins():
    """The guide includes the example packages' files themselves (one copy of the code, never a diverging one)."""
    text = (DOCS / "plugins.md").read_text()
    included = set(SNIPPET.findall(text))
    assert all((ROOT / path).is_file() for path in included)
    modules = {str(p.relative_to(ROOT)) for p in ROOT.glob("examples/third_party_*/*.py")}
    assert len(modules) == 3 and modules | {"examples/third_party_block/pyproject.toml"} <= included


def test_plugin_guide_block_agrees_with_an_independent_solver():
    """The guide's example block solves the same program as the independent reference solver."""
    testing = pytest.importorskip("did_core.testing")
    pytest.importorskip("cvxpy")
    namespace: dict = {}
    for block in _examples(DOCS / "plugins.md"):
        exec(block, namespace)
    games = torch.randn(2, 2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for concept in ("ce", "cce"):
        eq = namespace["ScipyDualBlock"]()(games, concept=namespace["get_concept"](concept), eps=0.05)
        for b in range(2):
            reference = testing.reference_solve(games[b].numpy(), concept, 0.05)
            assert float((eq.sigma[b] - torch.as_tensor(reference)).abs().max()) < 1e-5


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
