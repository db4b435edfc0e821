"""The checks of a registered task's files through the ``did`` commands (:func:`file_checks`).

* **instance file**: the example file the task's instance format names (``InstanceFormat.example``) loads as a
  context of one, and ``did design TASK FILE --optimise`` designs for it when the format has an ``optimiser``
  (with a shipped generator: the next check but one);
* **malformed instance files**: a file that is not JSON, a JSON list, an object of unknown fields and a folder
  are each refused by ``did design`` with exit code 2 and one ``did: error:`` line naming the file, nothing on
  stdout and nothing written beside it (:func:`design_refusal`);
* **shipped generators read-only**: ``did eval --shipped TASK --concept C`` and ``did design`` of the example
  file with each shipped generator succeed and leave the task's ``shipped`` folder byte for byte as it was.

The commands run in this process (``did_core.cli.main``), their output captured.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import warnings
from contextlib import redirect_stderr, redirect_stdout
from functools import partial
from pathlib import Path
from typing import Any

from did_core.cli import main
from did_core.instance_format import InstanceFormat
from did_core.plugin_checks.checks import Check, NotApplicable, expect
from did_core.plugins import get_task
from did_core.shipped import shipped_concepts
from did_core.tasks import context_size

__all__ = ["file_checks", "did", "design_refusal", "digest", "instance_file", "malformed_instances",
           "shipped_read_only", "MALFORMED"]

#: Malformed instance files by name: their content (text as it is, another value as JSON, ``None`` a folder).
MALFORMED: dict[str, Any] = {"not-json.json": "{not json", "a-list.json": [], "unknown.json": {"no_such_field": 1},
                             "a-folder.json": None}


def did(*argv: str) -> tuple[int, str, str]:
    """``did ARGV`` in this process: its exit code, stdout and stderr (the warning display it sets is restored)."""
    out, err, shown = io.StringIO(), io.StringIO(), warnings.showwarning
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
    finally:
        warnings.showwarning = shown
    return code, out.getvalue(), err.getvalue()


def design_refusal(task: str, path: Path, content: Any) -> str | None:
    """Why ``did design TASK path`` does not refuse a malformed instance as it should (``None``: it does): exit
    code 2, one ``did: error:`` line naming the file, nothing on stdout, nothing written beside the file.

    ``content`` is written to ``path`` first: text as it is, another value as JSON, ``None`` as a folder.
    """
    if content is None:
        path.mkdir()
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    before = sorted(p.name for p in path.parent.iterdir())
    code, out, err = did("design", task, str(path), "--optimise", "--steps", "1")
    if code != 2 or out:
        return f"exit code {code} (not 2), stdout {out[:80]!r}"
    if not err.startswith("did: error:") or err.count("\n") != 1 or str(path) not in err or "Traceback" in err:
        return f"not one 'did: error:' line naming the file: {err[:200]!r}"
    if sorted(p.name for p in path.parent.iterdir()) != before:
        return "files were written beside it"
    return None


def digest(folder: Path) -> dict[str, str]:
    """Every path under ``folder``: a file's SHA-256, ``"folder"`` for a folder."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


def _instances(name: str) -> InstanceFormat:
    instances = get_task(name).instances
    if instances is None:
        raise NotApplicable("the task reads no instance files (Task.instances is None)")
    return instances


def _example(name: str) -> Path:
    example = _instances(name).example
    if example is None:
        raise NotApplicable("its instance format names no example file (InstanceFormat.example)")
    return Path(example)


def _designs(name: str, *argv: str) -> None:
    code, out, err = did("design", name, *argv, "--json")
    expect(code == 0, f"did design {name} {' '.join(argv)}: exit code {code}: {err.strip()[:300]}")
    expect(isinstance(json.loads(out), dict), f"did design {name} --json printed no JSON object")


def instance_file(name: str, quick: bool = False) -> None:
    """See the module docstring, *instance file*."""
    example, instances = _example(name), _instances(name)
    context = instances.load(example)
    expect(context_size(context) == 1, f"{example} loads as {context_size(context)} contexts, not one")
    if instances.optimiser is not None:
        _designs(name, str(example), "--optimise", "--steps", "2" if quick else "10")
    elif not shipped_concepts(name):
        raise NotApplicable("did design needs a trained generator: the task has no optimiser and ships none")


def malformed_instances(name: str) -> None:
    """See the module docstring, *malformed instance files*."""
    _instances(name)
    with tempfile.TemporaryDirectory() as folder:
        for file, content in MALFORMED.items():
            problem = design_refusal(name, Path(folder) / file, content)
            expect(problem is None, f"did design {name} on {file}: {problem}")


def shipped_read_only(name: str, quick: bool = False) -> None:
    """See the module docstring, *shipped generators read-only*."""
    concepts = shipped_concepts(name)
    if not concepts:
        raise NotApplicable("the task ships no generator")
    folder = Path(get_task(name).shipped)
    before = digest(folder)
    instances = get_task(name).instances
    example = instances.example if instances is not None else None
    with tempfile.TemporaryDirectory() as out:
        for concept in concepts:
            report = Path(out) / f"{concept}.json"
            code, _, err = did("eval", "--shipped", name, "--concept", concept, "--contexts", "2" if quick else "8",
                               "--out", str(report))
            expect(code == 0, f"did eval --shipped {name} --concept {concept}: exit code {code}: {err.strip()[:300]}")
            if example is not None:
                _designs(name, str(example), "--concept", concept)
    changed = sorted(set(before.items()) ^ set(digest(folder).items()))
    expect(not changed, f"{folder} changed: {', '.join(sorted({path for path, _ in changed}))}")


def file_checks(name: str, quick: bool = False) -> list[Check]:
    """The checks of the registered task ``name``'s instance files and shipped generators."""
    subject = f"task {name}"
    return [
        Check(subject, "did design on its example instance", partial(instance_file, name, quick)),
        Check(subject, "malformed instance files refused in one line", partial(malformed_instances, name)),
        Check(subject, "shipped generators unchanged by did eval and did design", partial(shipped_read_only, name,
                                                                                         quick)),
    ]
