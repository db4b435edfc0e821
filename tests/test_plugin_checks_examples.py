"""CI runs the contract-test kit's one command on the three example plugins (examples/third_party_*), as their
authors would: ``python -m did_core.plugin_checks DISTRIBUTION --quick`` in a fresh process, exit code 0.

The three are installed for the subprocess as ``pip install -e`` installs them, without pip or a network: a
folder of ``*.dist-info`` holding the name, version and entry points each ``pyproject.toml`` declares, and the
example folders, on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FOLDERS = ("third_party_block", "third_party_concept", "third_party_task")


def _project(folder: str) -> dict:
    return tomllib.loads((EXAMPLES / folder / "pyproject.toml").read_text())["project"]


def _dist_info(site: Path, folder: str) -> None:
    """The ``*.dist-info`` of ``examples/folder`` in ``site``: its metadata and entry points."""
    project = _project(folder)
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = "".join(f"{name} = {value}\n" for name, value in project["entry-points"]["did"].items())
    (info / "entry_points.txt").write_text("[did]\n" + points)


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    """The environment of a subprocess in which the three examples are installed (every installed plugin loads)."""
    site = tmp_path_factory.mktemp("site")
    for folder in FOLDERS:
        _dist_info(site, folder)
    path = [str(site), *(str(EXAMPLES / folder) for folder in FOLDERS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env.pop("DID_LOAD_PLUGINS", None)
    return env


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_kit_passes_on_the_example_plugin(folder, environment, tmp_path):
    distribution = _project(folder)["name"]
    done = subprocess.run([sys.executable, "-m", "did_core.plugin_checks", distribution, "--quick"], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = done.stdout.splitlines()
    assert rows[0].startswith(f"PASS  distribution {distribution}: loads without errors")
    assert "0 failed" in rows[-1] and not [row for row in rows if row.startswith("FAIL")]
    assert not list(tmp_path.iterdir())  # nothing written where it ran
