"""Validated configuration of a training run (precedence: defaults < profile < YAML file < flags).

The command line and a YAML file map onto the same pydantic model, so an
unknown or invalid field is rejected the same way from both, in one line.
Profiles come from the task: its ``train_profiles`` (trainer fields) and each
component's ``PROFILES`` (its own options). The concept must be a registered
one; an unnamed block or exact block is the preferred exact block for the
concept (by declared capabilities), and the resolved name is what is stored. The
exact block must be one: a learned block there is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from did_core.files import UnreadableFile, YamlError, parse_yaml, read_text_file, shown
from did_core.plugins import (DEFAULT_CONCEPT, component_factory, exact_block_for, exact_block_named, get_concept,
                              registry)
from did_core.tasks import Task, options_error

__all__ = ["TrainConfig", "load_yaml", "resolve_train_config", "profile_settings", "generic_default", "ConfigError",
           "PROFILES", "RECORDED"]

PROFILES: tuple[str, ...] = ("quick", "paper")

#: Fields that record how a run was made rather than set it: no command-line flag; training overwrites them.
RECORDED: tuple[str, ...] = ("world_size",)


class ConfigError(ValueError):
    """A configuration problem, described in one line."""


class TrainConfig(BaseModel):
    """Every option of ``did train``; every number finite (``inf`` or ``nan`` is refused as any invalid value)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    task: str = Field(description="task name: its sampler, loss and default generator")
    block: str | None = Field(None, description="equilibrium block the generator trains through (default: the "
                              "preferred installed exact block for the concept)")
    block_options: dict[str, Any] = Field(default_factory=dict, description="options of the block's factory")
    exact_block: str | None = Field(None, description="exact block used for evaluation and the guard (default: "
                                    "the preferred installed exact block for the concept)")
    concept: str = Field(DEFAULT_CONCEPT, description="equilibrium concept (did plugins lists them)")
    concept_options: dict[str, Any] = Field(default_factory=dict, description="options of the concept (did plugins "
                                            "lists them), e.g. '{cap: 0.3}'")
    eps: float = Field(0.05, gt=0, description="equilibrium tolerance (relative unless absolute_eps)")
    absolute_eps: bool = False
    profile: Literal["quick", "paper"] = "quick"
    sampler: str | None = Field(None, description="override the task's sampler")
    loss: str | None = Field(None, description="override the task's designer objective")
    generator: str | None = Field(None, description="override the task's generator")
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    loss_options: dict[str, Any] = Field(default_factory=dict)
    generator_options: dict[str, Any] = Field(default_factory=dict)
    steps: int = Field(300, gt=0)
    batch_size: int = Field(64, gt=0)
    size_groups: int = Field(8, gt=0, description="run each batch as at most this many size groups, each padded "
                             "only to its own largest size (1: pad the whole batch); the loss and gradient are the padded "
                             "batch's up to rounding")
    group_min_saving: int = Field(1024, ge=0, description="split off one more size group only when it saves more "
                                  "padded cells (contexts x joint actions x outcomes) than this; each group has a "
                                  "fixed cost")
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    final_lr_fraction: float = Field(0.1, gt=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    worst_case_weight: float = Field(0.0, ge=0, description="add this weight times the mean worst-case value over "
                                     "the eps-equilibrium set (one LP per context, gradient by its duals; tasks "
                                     "whose value is linear in the joint) to the loss; 0: maximum-entropy training "
                                     "only, no LP solved")
    losing_weight: float = Field(1.0, ge=0, le=1, description="weight of the contexts where the baseline "
                                 "intervention's loss is below the generator's (1: the plain loss; 0: the guarded "
                                 "loss, per context the better of the two, so contexts where nothing beats the "
                                 "baseline pull nothing); one more block solve per context and step; objectives with "
                                 "a per-context loss")
    imitation_contexts: int = Field(0, ge=0, description="first design for this many contexts with the task's "
                                    "per-instance optimiser (through the exact block) and regress the generator "
                                    "on its answers for imitation_steps steps (0: no imitation phase)")
    imitation_steps: int = Field(0, ge=0, description="the first steps of the run that regress on the "
                                 "optimiser's answers instead of training through the block")
    imitation_search_steps: int = Field(50, ge=0, description="gradient steps of the per-instance optimiser "
                                        "for each imitated context")
    seed: int = 0
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    threads: int | None = Field(1, gt=0, description="torch intra-op CPU threads: batched small games gain nothing "
                                "from more, and on a busy machine extra threads wait for cores (null in a config "
                                "file: torch's default, one per core)")
    log_every: int = Field(10, gt=0)
    checkpoint_every: int = Field(50, gt=0)
    eval_contexts: int = Field(128, gt=0)
    eval_seed: int = 12345
    world_size: int = Field(1, gt=0, description="processes the run trained on (recorded, not set: torchrun or "
                            "did train --nproc decides it; the batch is the same global batch on any number)")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", value):
            raise ValueError("must be cpu, cuda, cuda:N or auto")
        return value

    @property
    def sampler_name(self) -> str:
        return self.sampler or self.task

    @property
    def loss_name(self) -> str:
        return self.loss or self.task

    @property
    def generator_name(self) -> str:
        return self.generator or self.task


def generic_default(name: str) -> Any:
    """The default of ``TrainConfig`` field ``name`` before any profile (``None`` for a required field)."""
    field = TrainConfig.model_fields[name]
    if field.is_required():
        return None
    return field.default if field.default_factory is None else field.default_factory()


#: The largest configuration file read.
CONFIG_FILE_LIMIT = 1 << 20


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, or ``ConfigError``."""
    try:
        data = parse_yaml(read_text_file(Path(path), CONFIG_FILE_LIMIT))
    except (UnreadableFile, YamlError) as exc:  # also a duplicate key, or YAML aliases that repeat too much
        raise ConfigError(f"config file {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def profile_settings(task: Task, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``profile`` of ``task`` puts over the generic defaults: its ``train_profiles`` entry, and the
    ``PROFILES`` entry of each component as ``sampler_options``, ``loss_options`` and ``generator_options``
    (of the component ``overrides["sampler"]`` etc. names in place of the task's own, if any)."""
    overrides = overrides or {}
    settings: dict[str, Any] = dict(task.train_profiles.get(profile, {}))
    for kind, key, own in (("samplers", "sampler", task.sampler), ("losses", "loss", task.objective),
                           ("generators", "generator", task.generator)):
        factory = component_factory(kind, str(overrides[key])) if overrides.get(key) else own
        settings[f"{key}_options"] = dict(getattr(factory, "PROFILES", {}).get(profile, {}))
    return settings


def resolve_train_config(flags: dict[str, Any], file_data: dict[str, Any] | None = None) -> TrainConfig:
    """Merge defaults, the task's profile, a config file and flags into a validated config."""
    merged = _merge(file_data or {}, {k: v for k, v in flags.items() if v is not None})
    if "task" not in merged:
        raise ConfigError("no task given: pass --task NAME or set task: in the config file")
    profile = merged.get("profile", "quick")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {shown(profile)}; known: {', '.join(PROFILES)}")
    defaults = profile_settings(registry("tasks").get(str(merged["task"])).value, profile, merged)
    concept = str(merged.get("concept", DEFAULT_CONCEPT))
    concept_options = merged.get("concept_options") or {}
    try:  # an unknown concept is a LookupError naming the known ones; invalid options one line
        get_concept(concept, concept_options if isinstance(concept_options, Mapping) else {})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for key in ("block", "exact_block"):
        if not merged.get(key):
            merged[key] = exact_block_for(concept)
    exact_block_named(str(merged["exact_block"]), concept, "exact_block (--exact-block)")
    try:
        return TrainConfig(**_merge(defaults, merged))
    except ValidationError as exc:
        raise ConfigError(str(options_error("the training config", exc))) from None
