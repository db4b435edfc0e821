"""Validated options, the one pattern of every configurable plugin object (blocks' components, tasks' components,
concepts): a pydantic model ``Options`` that forbids unknown fields, and one line for whatever is wrong.

It sits on the floor of the package (it imports nothing of ``did_core``), so that both
:mod:`did_core.concepts` and :mod:`did_core.tasks` build on it. Example::

    >>> from pydantic import Field
    >>> class CapOptions(Options):
    ...     cap: float = Field(0.3, gt=0, le=1, description="largest probability of a joint action")
    >>> validate_options(CapOptions, "concept 'capped'", {"cap": 0.25}).cap
    0.25
    >>> validate_options(CapOptions, "concept 'capped'", {"cap": 2})
    Traceback (most recent call last):
    ValueError: invalid options for concept 'capped': cap: Input should be less than or equal to 1
    >>> validate_options(CapOptions, "concept 'capped'", {"cap": float("nan")})
    Traceback (most recent call last):
    ValueError: invalid options for concept 'capped': cap: Input should be a finite number
    >>> describe_options(CapOptions)
    'cap: float = 0.3'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Options", "options_error", "validate_options", "describe_options"]


class Options(BaseModel):
    """Base of every configurable object's options: unknown fields are rejected, a float field refuses ``inf``
    and ``nan`` (a subclass may allow them on a field: ``Field(allow_inf_nan=True)``); the options are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def options_error(owner: str, error: ValidationError) -> ValueError:
    """One line naming every invalid field of ``owner``'s options."""
    parts = []
    for item in error.errors():
        field = ".".join(str(x) for x in item["loc"]) or "(options)"
        parts.append(f"{field}: {item['msg']}")
    return ValueError(f"invalid options for {owner}: " + "; ".join(parts))


def validate_options(model: type[Options], owner: str, options: Mapping[str, Any]) -> Options:
    """``model(**options)``, or the one-line ``ValueError`` of :func:`options_error` naming ``owner``."""
    try:
        return model(**options)
    except ValidationError as exc:
        raise options_error(owner, exc) from None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe_options(model: type[Options]) -> str:
    """The fields of ``model`` in one line, ``"name: type = default"`` each (``""`` for none), e.g. ``"cap: float =
    0.3"``; a required field has no default."""
    parts = []
    for name, field in model.model_fields.items():
        text = f"{name}: {_type_name(field.annotation)}"
        if not field.is_required():
            default = field.default if field.default_factory is None else field.default_factory()
            text += f" = {default!r}"
        parts.append(text)
    return ", ".join(parts)
