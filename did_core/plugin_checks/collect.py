"""Which checks to run: those of what a distribution registers, of named blocks, concepts and tasks, or of
everything registered (:func:`collect`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

from did_core.blocks import capabilities_of
from did_core.plugin_checks.blocks import block_checks
from did_core.plugin_checks.checks import Check, expect
from did_core.plugin_checks.commands import file_checks
from did_core.plugin_checks.concepts import concept_checks
from did_core.plugin_checks.tasks import task_checks
from did_core.plugins import get_concept, load_plugins, registry

__all__ = ["collect", "KINDS"]

#: The kinds of things the kit checks (registry names).
KINDS = ("blocks", "concepts", "tasks")


def _normal(distribution: str) -> str:
    """A distribution's name as packaging compares them (``Did_Example.Block`` is ``did-example-block``)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _loads(errors: list[str]) -> None:
    expect(not errors, "; ".join(errors))


def _registered_by(distribution: str) -> tuple[dict[str, list[str]], list[str]]:
    """The names of each kind ``distribution`` registers, and the errors of loading its plugins; a one-line
    ``ValueError`` when it registers none and none failed."""
    wanted, state = _normal(distribution), load_plugins()
    own = {kind: [e.name for e in registry(kind) if _normal(e.provider) == wanted] for kind in KINDS}
    errors = [e for e in state.errors if _normal(e.split(" ", 1)[0]) == wanted]
    if not any(own.values()) and not errors:
        loaded = sorted({e.provider for kind in KINDS for e in registry(kind)})
        raise ValueError(f"distribution {distribution!r} registers no block, concept or task (those that do: "
                         f"{', '.join(loaded)}; is it installed, and not left out by DID_LOAD_PLUGINS?)")
    return own, errors


def collect(distribution: str | None = None, *, blocks: Sequence[str] = (), concepts: Sequence[str] = (),
            tasks: Sequence[str] = (), quick: bool = False) -> list[Check]:
    """The checks of every block, concept and task ``distribution`` registers (a check that it loaded without
    errors first) and of those named; with neither, of everything registered.

    A block is checked under every registered concept it supports, a concept with its default options, a task
    with its components, instance files and shipped generators. ``quick``: smaller gradchecks, fewer optimisation
    steps and evaluation contexts. A distribution that registers nothing of these kinds or an unknown name is a
    one-line ``ValueError``.
    """
    chosen = {"blocks": list(blocks), "concepts": list(concepts), "tasks": list(tasks)}
    checks: list[Check] = []
    if distribution is not None:
        own, errors = _registered_by(distribution)
        checks.append(Check(f"distribution {distribution}", "loads without errors", partial(_loads, errors)))
        chosen = {kind: chosen[kind] + own[kind] for kind in KINDS}
    elif not any(chosen.values()):
        chosen = {kind: registry(kind).names() for kind in KINDS}
    for name in dict.fromkeys(chosen["blocks"]):
        factory = registry("blocks").get(name).value
        for concept in registry("concepts").names():
            if capabilities_of(factory).supports(concept):
                checks += block_checks(factory, get_concept(concept), quick, name)
    for name in dict.fromkeys(chosen["concepts"]):
        checks += concept_checks(get_concept(name), quick)
    for name in dict.fromkeys(chosen["tasks"]):
        registry("tasks").get(name)  # an unknown name lists the known ones
        checks += task_checks(name) + file_checks(name, quick)
    return checks
