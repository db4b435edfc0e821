"""The options of ``did train``: one flag per config field, the config a command line makes, and what
``did train --help`` shows (each option's default for the run a command line makes, and the task profiles).

Plain ``did train --help`` shows the generic defaults (those of
:class:`~did_core.config.TrainConfig`) and, after the options, what the quick and
paper profiles of every installed task change. Once a command line names a task
(``--task``, or a ``--config`` file or ``--resume`` run that does), each option shows
the value that run would use: the generic default with the task's profile applied,
then the file and the flags, labelled where it does not come from the generic
defaults. The help and the command read the same sources (:func:`config_sources`),
so the defaults shown are those the run would get.
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from did_core import distributed
from did_core.config import (PROFILES, RECORDED, ConfigError, TrainConfig, generic_default, load_yaml,
                             profile_settings, resolve_train_config)
from did_core.console import yaml_value
from did_core.distributed import World
from did_core.plugins import registry
from did_core.tasks import Task

__all__ = ["RunDefaults", "config_sources", "run_defaults", "add_config_flags", "train_epilog"]


@dataclass(frozen=True)
class RunDefaults:
    """The resolved config of a command line (``None`` while it names no task: the generic defaults apply) and,
    per field set by something other than the generic defaults, where its value comes from (e.g. ``"the
    inverse/paper profile; generic 300"``)."""

    config: TrainConfig | None = None
    origins: dict[str, str] = field(default_factory=dict)


def _shown(value: Any) -> str:
    """A value as it would be written on the command line (mappings in YAML flow style)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return "unset" if value is None else str(value)


def _train_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name, None) is not None}


def config_sources(args: argparse.Namespace, world: World) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The flags a ``did train`` command sets and the mapping its ``--config`` file (or the run it resumes) holds.

    Files are read by rank 0 only.
    """
    if args.resume:
        for flag, value in (("--config", args.config), ("--run-dir", args.run_dir)):
            if value:
                raise ConfigError(f"{flag} cannot be combined with --resume: a resumed run keeps its directory "
                                  f"and config")
        run_path = Path(args.resume)

        def stored() -> dict[str, Any]:
            if not (run_path / "config.yaml").exists():
                raise ConfigError(f"cannot resume: {run_path} has no config.yaml (not a run directory)")
            return load_yaml(run_path / "config.yaml")

        file_data = distributed.on_main(world, stored)
    else:
        file_data = distributed.on_main(world, lambda: load_yaml(Path(args.config)) if args.config else None)
    return _train_flags(args), file_data


def run_defaults(args: argparse.Namespace) -> RunDefaults:
    """What the ``did train`` command line ``args`` would run with (the generic defaults while it names no task)."""
    if not (args.task or args.config or args.resume):
        return RunDefaults()
    flags, file_data = config_sources(args, World())
    cfg = resolve_train_config(flags, file_data)
    values = cfg.model_dump()
    profile = profile_settings(registry("tasks").get(cfg.task).value, cfg.profile, values)
    source = f"the run {args.resume}" if args.resume else f"the file {args.config}"
    origins = {}
    for name, value in values.items():
        if name in flags:
            origins[name] = "set on this command line"
        elif name in (file_data or {}):
            origins[name] = f"from {source}"
        elif name in profile and value != generic_default(name):
            origins[name] = f"the {cfg.task}/{cfg.profile} profile; generic {_shown(generic_default(name))}"
        elif generic_default(name) is None and value is not None:
            origins[name] = "chosen for this run"
    return RunDefaults(cfg, origins)


def add_config_flags(parser: argparse.ArgumentParser, defaults: RunDefaults | None = None) -> None:
    """One flag per ``TrainConfig`` field, its help ending with its default (the generic one, or as ``defaults``)."""
    defaults = defaults or RunDefaults()
    values = defaults.config.model_dump() if defaults.config else {}
    for name, info in TrainConfig.model_fields.items():
        if name in RECORDED:
            continue
        flag = "--" + name.replace("_", "-")
        default = values.get(name, generic_default(name))
        origin = defaults.origins.get(name)
        # A None default is described by the field itself (e.g. "default: the preferred exact block").
        shown = [info.description or ""] + ([] if default is None else [f"default {_shown(default)}"
                                                                         + (f" ({origin})" if origin else "")])
        text = "; ".join(s for s in shown if s) or None
        if info.annotation is bool:
            parser.add_argument(flag, dest=name, nargs="?", const=True, default=None, type=yaml_value, help=text)
        else:
            choices = get_args(info.annotation) if str(info.annotation).startswith("typing.Literal") else None
            parser.add_argument(flag, dest=name, default=None, type=yaml_value if choices is None else str,
                                choices=choices, help=text)


def _changes(task: Task, profile: str) -> dict[str, Any]:
    """The settings ``profile`` of ``task`` changes: trainer fields off their generic default, and component
    options off the component's own default."""
    out: dict[str, Any] = {}
    own = {"sampler_options": task.sampler, "loss_options": task.objective, "generator_options": task.generator}
    for name, value in profile_settings(task, profile).items():
        if name in own:
            fields = getattr(getattr(own[name], "Options", None), "model_fields", {})
            value = {k: v for k, v in value.items() if k not in fields or fields[k].is_required()
                     or fields[k].default != v}
            if value:
                out[name] = value
        elif value != generic_default(name):
            out[name] = value
    return out


def train_epilog(defaults: RunDefaults) -> str:
    """The text after ``did train --help``'s options: where the defaults shown come from (and, generic, the
    profiles of every installed task)."""
    width = max(shutil.get_terminal_size().columns - 2, 40)
    if defaults.config is not None:
        cfg = defaults.config
        return textwrap.fill(f"The defaults shown are those this command line would run with (task {cfg.task}, "
                             f"profile {cfg.profile}): the generic defaults, then the task's profile, then a --config "
                             f"file and the flags given; a value that is not the generic default says where it comes "
                             f"from. The resolved config is written to the run directory's config.yaml.", width)
    lines = [textwrap.fill("The defaults shown are the generic ones. A task's profile (--profile "
                           f"{'|'.join(PROFILES)}) changes some of them, and --config and flags override both; "
                           "did train --task TASK [--profile P] --help shows the defaults of that run. What each "
                           "installed task's profiles change:", width)]
    tasks = registry("tasks")
    labels = [f"{name}/{profile}" for name in tasks.names() for profile in PROFILES]
    indent = max([len(label) for label in labels] + [0]) + 4
    for entry in tasks:
        for profile in PROFILES:
            changes = _changes(entry.value, profile)
            text = ", ".join(f"{k} {_shown(v)}" for k, v in changes.items()) or "(nothing)"
            lines.append(textwrap.fill(text, width, initial_indent=f"  {entry.name}/{profile}".ljust(indent),
                                       subsequent_indent=" " * indent))
    return "\n".join(lines)
