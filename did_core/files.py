"""Reading user input safely: regular files with a size limit (text: UTF-8 only), bounded JSON and YAML, and
a user's value shown in a message.

A FIFO or a device named as an input file would otherwise hang a command
(``/dev/stdin``, a named pipe) or exhaust memory (``/dev/zero``); an oversized
file would be read whole before anything can check it. Every way a read can fail
becomes an :class:`UnreadableFile` whose message says why in a few words (the
caller names the file and its role).

JSON and YAML are decoded with the same two rules wherever a user gives them (a
file, a flag's value): a key given twice in one object is refused, naming it (the
later one would silently win), and so is a number too large for float64. YAML
aliases may not make a value much larger than its text (:func:`parse_yaml`): a
few lines of aliases can stand for billions of values ("billion laughs") that any
later walk over the value (a validation, an error message) would expand.
:func:`shown` is how a message shows a user's value: at most a line, whatever the
value.
"""

from __future__ import annotations

import json
import os
import reprlib
import stat
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = ["UnreadableFile", "read_regular_file", "read_text_file", "read_json_file", "JsonRefused", "json_object",
           "json_int", "YamlError", "YamlRefused", "parse_yaml", "MAX_YAML_ALIASES", "MAX_YAML_REPEATS", "shown",
           "clip", "SHOWN_LIMIT", "MIB"]

MIB = 1 << 20


class UnreadableFile(ValueError):
    """A file that cannot be read as an input: missing, not a regular file, too large, or an OS error."""


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` (following links) when it is a regular file of at most ``limit`` bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UnreadableFile("file not found") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableFile("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile("is not a regular file (a pipe, device or socket); copy its content into a file")
    if info.st_size > limit:
        raise UnreadableFile(f"is {info.st_size / MIB:.1f} MiB; files over {limit / MIB:.0f} MiB are refused")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limit:  # grew while being read
        raise UnreadableFile(f"is over {limit / MIB:.0f} MiB; refused")
    return data


def read_text_file(path: Path, limit: int) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped), read as :func:`read_regular_file` reads it."""
    try:
        return read_regular_file(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json_file(path: Path, limit: int) -> Any:
    """The JSON value in ``path``, read as :func:`read_text_file` reads it; malformed JSON (also nested too deeply
    for the parser, or a number too long to convert), a key given twice in one object or an integer beyond float64's
    range is an :class:`UnreadableFile` saying where or why."""
    text = read_text_file(path, limit)
    try:
        return json.loads(text, object_pairs_hook=json_object, parse_int=json_int)
    except JsonRefused as exc:
        raise UnreadableFile(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise UnreadableFile("is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise UnreadableFile(f"is not valid JSON: {exc}") from None


class JsonRefused(ValueError):
    """Well-formed JSON that is refused: a key given twice in one object, or an integer beyond float64's range."""


def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object as a dict; a key given twice is a :class:`JsonRefused`."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRefused(f"has the key {shown(key)} twice in one object")
            seen.add(key)
    return out


def json_int(text: str) -> int:
    """``parse_int`` for ``json.loads``: an integer literal; beyond float64's range a :class:`JsonRefused`."""
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise JsonRefused(f"has the number {clip(text, 40)}, out of float64 range")
    return value


# --------------------------------------------------------------------------------------------------------- YAML

#: At most this many alias nodes (``*name``) in one YAML text.
MAX_YAML_ALIASES = 100
#: At most this many nodes repeated by YAML aliases (the value's nodes beyond the text's own).
MAX_YAML_REPEATS = 100_000


class YamlError(ValueError):
    """YAML text that cannot be read: malformed (or nested too deeply for the parser); a one-line message."""


class YamlRefused(YamlError):
    """Well-formed YAML that is refused: a duplicate key, or aliases that repeat too much or refer to themselves."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(nodes of ``root`` with every alias expanded, distinct nodes); ``YamlRefused`` on an alias cycle.

    Iterative (no recursion limit) and linear in the distinct nodes: each node's
    expanded size is computed once.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose subtree is being walked: an ancestor of every node popped meanwhile
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            open_.discard(key)
            continue
        if key in sizes:
            continue
        open_.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                raise YamlRefused(f"has a YAML alias inside the value it names (the value at {_where(child)})")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)], len(sizes)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and aliases repeating more than a bounded number of nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        node.written = list(node.value)  # the pairs as written: merge keys (<<) rewrite node.value when constructed
        return node

    def compose_document(self) -> Any:
        node = super().compose_document()
        if self.aliases > MAX_YAML_ALIASES:
            raise YamlRefused(f"uses {self.aliases} YAML aliases (at most {MAX_YAML_ALIASES})")
        if node is not None:
            expanded, distinct = _expanded_size(node)
            if expanded - distinct > MAX_YAML_REPEATS:
                raise YamlRefused(f"has YAML aliases that repeat {expanded - distinct} values "
                                  f"(at most {MAX_YAML_REPEATS})")
        return node

    def construct_yaml_int(self, node: Any) -> int:
        value = super().construct_yaml_int(node)
        if abs(value) > sys.float_info.max:
            raise YamlRefused(f"has the number {clip(node.value, 40)} ({_where(node)}), out of float64 range")
        return value

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in getattr(node, "written", node.value):
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: the base class refuses it
                    continue
                if duplicate:
                    raise YamlRefused(f"has a duplicate key {shown(key)} ({_where(key_node)})")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        return exc.problem + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else "")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def parse_yaml(text: str) -> Any:
    """The value of the YAML ``text``, read as ``yaml.safe_load`` reads it, but bounded.

    Refused (:class:`YamlRefused`, a one-line message): a mapping with a key given
    twice (merge keys ``<<`` may still be overridden), more than
    :data:`MAX_YAML_ALIASES` aliases, aliases that repeat more than
    :data:`MAX_YAML_REPEATS` nodes in all, or an alias inside the value it names.
    Malformed text (also nested too deeply, or a value its type cannot hold, such as
    an integer of over 4300 digits) is a :class:`YamlError` starting "is not valid YAML".
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except YamlRefused:
        raise
    except yaml.YAMLError as exc:
        raise YamlError(f"is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise YamlError("is not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. int() of 5000 digits, a date of month 13
        raise YamlError(f"is not valid YAML: {clip(str(exc))}") from None
    finally:
        loader.dispose()


# ------------------------------------------------------------------------------------------- values in messages

class _Shown(reprlib.Repr):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxlong, self.maxother = 3, limit, limit, limit

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # over sys.get_int_max_str_digits() digits
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"


#: The most characters :func:`shown` gives.
SHOWN_LIMIT = 80


def clip(text: str, limit: int = SHOWN_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters ("..." marks the cut)."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def shown(value: Any, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)`` for a message: at most ``limit`` characters, computed in bounded time and memory
    (nested lists and mappings are cut after a few entries and levels, as :mod:`reprlib` does)."""
    return clip(_Shown(limit).repr(value), limit)
