"""Generators shipped inside task plugins: their folder, exporting a run into one, and finding one.

Why: a user who installs a task plugin should be able to apply and check a
trained mechanism without training one. A task declares ``Task.shipped``, a
folder with one subfolder per concept (``shipped/ce``, ``shipped/cce``); each
subfolder is a small, read-only run directory that ``did eval --shipped`` and
``did design`` load exactly as they load a run:

* ``config.yaml``   the resolved training config (task, sampler, generator, eps, ...);
* ``checkpoint.pt`` the generator's weights, the step and the training seconds only
  (no optimiser state; loaded with ``weights_only=True``);
* ``metrics.json``  the training curve's records;
* ``report.json`` / ``report.md``  the held-out evaluation under the exact block
  (``did eval RUN``), which the model card and the README's results table read;
* ``MODEL_CARD.md`` and ``learning_curve.png``  written by :func:`ship`.

``did ship RUN FOLDER`` writes such a subfolder from a finished run that has a report.
Before anything is written it checks the destination (not the run, not inside it,
not holding it; its parent exists; an existing folder that is not empty only with
``--force``, and only when it is a shipped folder: exactly the files above), the run,
and the optional dependency of the learning curve (matplotlib); then it writes the
folder whole (:func:`did_core.runs.publish_folder`: a temporary folder beside it that
takes its place), so a failure leaves the destination as it was.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from did_core.components import build_task_parts
from did_core.config import load_yaml, resolve_train_config
from did_core.plots import require_matplotlib, training_curves
from did_core.plugins import get_task
from did_core.report import markdown_table
from did_core.runs import OutputRefused, RunDir, json_text, output_folder, publish_folder

__all__ = ["ShippedError", "shipped_folder", "shipped_concepts", "check_destination", "ship", "model_card",
           "card_notes", "replace_report", "SHIPPED_FILES"]

CARD = "MODEL_CARD.md"
CURVE = "learning_curve.png"
#: The files of a shipped folder (the learning curve only where the run logged metrics).
SHIPPED_FILES: tuple[str, ...] = (RunDir.CHECKPOINT, RunDir.CONFIG, RunDir.METRICS, "report.json", "report.md", CARD,
                                  CURVE)


class ShippedError(ValueError):
    """A shipped generator that does not exist or a run that cannot be shipped; the message is one line."""


def shipped_concepts(task_name: str) -> list[str]:
    """The concepts for which task ``task_name`` ships a generator (sorted; empty if none)."""
    folder = get_task(task_name).shipped
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p.name for p in Path(folder).iterdir() if (p / "checkpoint.pt").is_file())


def shipped_folder(task_name: str, concept: str) -> Path:
    """The shipped generator of ``task_name`` for ``concept``; a one-line ``ShippedError`` if there is none."""
    available = shipped_concepts(task_name)
    if concept not in available:
        offer = f"it ships: {', '.join(available)}" if available else "its plugin ships no generator"
        raise ShippedError(f"task {task_name} has no shipped generator for concept {concept}; {offer}")
    return Path(get_task(task_name).shipped) / concept


def _cell(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "-"
    return f"{summary['metric']:.4f} ({100 * summary['improved_share']:.0f}%)"


def _architecture(config: dict[str, Any], state: dict[str, Any]) -> str:
    """The generator's class, options (profile and overrides resolved) and parameter count."""

    generator = build_task_parts(resolve_train_config({}, config))[3]
    options = getattr(generator, "options", None)
    shown = f" `{options.model_dump()}`" if options is not None else ""
    count = sum(int(t.numel()) for t in state["model"].values())
    return f"`{type(generator).__name__}`{shown}, {count:,} parameters"


def model_card(config: dict[str, Any], report: dict[str, Any], state: dict[str, Any], notes: str = "") -> str:
    """The model card's Markdown: what was trained, how, on what, and the held-out table per size."""

    meta, blocks = report["meta"], report["blocks"]
    exact = config.get("exact_block") or next(iter(blocks))
    summary = blocks.get(exact) or next(iter(blocks.values()))
    seconds = state.get("elapsed_s")
    wall = f"{float(seconds) / 60:.1f} min of training" if seconds else "not recorded"
    polished = summary.get("polished") or {}
    lines = [
        f"# Shipped generator: {config['task']}, {config['concept'].upper()}",
        "",
        f"Trained with `did train` through `{config['block']}`; evaluated under `{exact}`.",
        "",
        "| | |",
        "|---|---|",
        f"| sampling | profile `{config.get('profile')}`, sampler options `{config.get('sampler_options') or {}}` |",
        f"| eps | {config['eps']} ({'absolute' if config.get('absolute_eps') else 'relative'}) |",
        f"| generator | {_architecture(config, state)} |",
        f"| objective options | `{config.get('loss_options') or {}}` |",
        f"| training | {int(state.get('step', 0))} of {config['steps']} steps, batch {config['batch_size']}, lr "
        f"{config['lr']} (warm-up {config['warmup_steps']}, decay to {config['final_lr_fraction']}), seed "
        f"{config['seed']} |",
        f"| wall time | {wall} ({config.get('threads') or 'default'} thread(s), device {config.get('device')}) |",
        f"| hardware | {state.get('hardware', 'not recorded')} |",
        f"| held-out | {meta['contexts']} contexts, seed {meta['seed']}: `{meta['command']}` |",
        "",
        f"Held-out result under `{exact}`: unguarded {_cell(summary)}, guarded {_cell(summary.get('guarded'))}, "
        f"polished {_cell(polished.get('under_exact'))}; baseline {summary['baseline']:.4f}"
        + (f"; no intervention beats {summary['bound']['metric']:.4f} (the task's bound)." if "bound" in summary
           else "."),
        "",
    ]
    if notes.strip():
        lines += [notes.strip(), ""]
    lines += ["## Evaluation", "", markdown_table(report), "", "## Learning curve", "", f"![learning curve]({CURVE})",
              ""]
    return "\n".join(lines)


def card_notes(card: str) -> str:
    """The notes a model card was written with (:func:`model_card`'s ``notes``: between the held-out result line
    and ``## Evaluation``); empty when it has none."""
    lines = card.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("Held-out result under")), None)
    end = next((i for i, line in enumerate(lines) if line == "## Evaluation"), None)
    if start is None or end is None or end < start:
        return ""
    return "\n".join(lines[start:end]).strip()


def replace_report(folder: Path, report: dict[str, Any]) -> list[Path]:
    """Give the shipped generator in ``folder`` a new held-out report (``did eval --shipped ... --out``, e.g. with
    ``--range``): ``report.json``, ``report.md`` and the model card are rewritten, the card's notes kept; the
    weights, config, metrics and curve are not touched. Returns the files rewritten.

    The report must be of this generator: its task, concept and trained steps those of the folder's config
    and checkpoint (a one-line :class:`ShippedError` otherwise, and nothing changes). The folder is
    replaced whole (:func:`did_core.runs.publish_folder`).
    """
    folder = Path(folder)
    run = RunDir(folder)
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if not set(SHIPPED_FILES) - {CURVE} <= set(held) <= set(SHIPPED_FILES):
        raise ShippedError(f"{folder} is not a shipped folder (a shipped folder holds exactly "
                           f"{', '.join(SHIPPED_FILES)}, the curve optional)")
    config, state = load_yaml(run.file(RunDir.CONFIG)), run.load_checkpoint()
    meta = report.get("meta") if isinstance(report, dict) else None
    blocks = report.get("blocks") if isinstance(report, dict) else None
    if not isinstance(meta, dict) or not isinstance(blocks, dict) or not blocks:
        raise ShippedError("the report is not a did eval report (it needs 'meta' and 'blocks')")
    theirs = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    for key in ("task", "concept"):
        if theirs.get(key) != config.get(key):
            raise ShippedError(f"the report evaluates {key} {theirs.get(key)!r}; {folder} ships {config.get(key)!r}")
    if state is None or meta.get("trained_steps") != int(state.get("step", -1)):
        raise ShippedError(f"the report evaluated a checkpoint of {meta.get('trained_steps')} steps; {folder} "
                           f"ships one of {None if state is None else state.get('step')}")
    kept = {name: run.file(name).read_bytes() for name in held if name not in ("report.json", "report.md", CARD)}
    new = {"report.json": json_text(report).encode(), "report.md": (markdown_table(report) + "\n").encode(),
           CARD: model_card(config, report, state, card_notes(run.file(CARD).read_text(encoding="utf-8"))).encode()}

    def fill(staging: Path) -> None:
        for name, data in {**kept, **new}.items():
            (staging / name).write_bytes(data)
            with open(staging / name, "rb") as handle:
                os.fsync(handle.fileno())

    publish_folder(folder, fill)
    return [folder / name for name in new]


def check_destination(run_path: Path, dest: Path, force: bool = False) -> None:
    """Refuse (a one-line :class:`~did_core.runs.OutputRefused`), before anything is read or written, a
    destination ``dest`` that ``did ship`` of the run ``run_path`` must not write.

    Refused: the run itself, a folder inside it or one that holds it; a folder whose parent
    does not exist, or a path that is not a folder; a folder inside another run directory or
    shipped folder (unless ``force``); an existing folder that is not empty, unless ``force``
    and it is a shipped folder (it holds exactly :data:`SHIPPED_FILES`, the curve optional).
    """
    run, target = Path(os.path.abspath(run_path)), Path(os.path.abspath(dest))
    if target == run or run in target.parents:
        raise OutputRefused(f"FOLDER {dest} is {'the run' if target == run else 'inside the run'} {run_path}: a "
                            f"shipped folder goes elsewhere (e.g. the task plugin's shipped/CONCEPT)")
    if target in run.parents:
        raise OutputRefused(f"FOLDER {dest} holds the run {run_path}: a shipped folder goes elsewhere (e.g. the "
                            f"task plugin's shipped/CONCEPT)")
    output_folder(dest, "FOLDER", force=force)
    held = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
    if not held:
        return
    if not force:
        raise OutputRefused(f"FOLDER {dest} is not empty; --force replaces it if it is a shipped folder")
    required = set(SHIPPED_FILES) - {CURVE}
    foreign = [name for name in held if name not in SHIPPED_FILES or not (dest / name).is_file()]
    missing = sorted(required - set(held))
    if foreign or missing:
        why = (f"it holds {', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}, not a shipped generator's"
               if foreign else f"it lacks {', '.join(missing)}")
        raise OutputRefused(f"FOLDER {dest} is not a shipped folder ({why}); --force replaces only a folder that "
                            f"holds exactly {', '.join(SHIPPED_FILES)}")


def ship(run_path: Path, dest: Path, notes: str = "", unfinished: bool = False, force: bool = False) -> list[Path]:
    """Write the shipped form of the run ``run_path`` into the folder ``dest``; returns the files written.

    The run needs a checkpoint at its last step (``unfinished``: any checkpoint; the model card
    then shows the step it stopped at) and a ``report.json`` from ``did eval`` of that checkpoint.
    Everything is checked before anything is written (:func:`check_destination`, with ``force``
    to replace a shipped folder), and the folder is written whole, so a failure changes nothing.
    """

    check_destination(run_path, dest, force)
    run = RunDir(run_path)
    if not run.file("config.yaml").is_file():
        raise ShippedError(f"{run_path} is not a run directory (no config.yaml)")
    config = load_yaml(run.file("config.yaml"))
    state = run.load_checkpoint()
    if state is None:
        raise ShippedError(f"{run_path} has no checkpoint to ship")
    if int(state.get("step", 0)) < int(config.get("steps", 0)) and not unfinished:
        raise ShippedError(f"{run_path} stopped at step {state.get('step')} of {config.get('steps')}: finish it "
                           f"(did train --resume) before shipping it, or ship it as it is with --unfinished")
    if not run.file("report.json").is_file():
        raise ShippedError(f"{run_path} has no report.json: run did eval {run_path} first")
    report = run.read_json("report.json")
    if report.get("meta", {}).get("config", {}).get("task") != config.get("task"):
        raise ShippedError(f"{run.file('report.json')} is not a report of this run's task")
    if int(report["meta"].get("trained_steps", config.get("steps", 0))) != int(state.get("step", 0)):
        raise ShippedError(f"{run.file('report.json')} evaluated another checkpoint than the run's last "
                           f"(step {state.get('step')}): run did eval {run_path} again")
    metrics = run.metrics()
    if metrics:
        require_matplotlib()  # the learning curve: found missing before anything is written

    kept = {"model": state["model"], "step": int(state["step"]),
            **{k: state[k] for k in ("elapsed_s", "hardware") if k in state}}
    buffer = io.BytesIO()
    torch.save(kept, buffer)
    files = {RunDir.CHECKPOINT: buffer.getvalue(),
             RunDir.CONFIG: run.file("config.yaml").read_bytes(),
             RunDir.METRICS: json_text(metrics).encode(),
             "report.json": json_text(report).encode(),
             "report.md": (markdown_table(report) + "\n").encode(),
             CARD: model_card(config, report, kept, notes).encode()}

    def fill(folder: Path) -> None:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        if metrics:
            training_curves(metrics, folder / CURVE)
        for name in os.listdir(folder):  # on disk before the folder takes its place
            with open(folder / name, "rb") as handle:
                os.fsync(handle.fileno())

    publish_folder(dest, fill)
    return [dest / name for name in (*files, *([CURVE] if metrics else []))]
