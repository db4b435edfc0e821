"""``did plugins``: what is installed, what each plugin registers, and what failed to load."""

from __future__ import annotations

import json

from did_core.console import ArgumentParser, Command
from did_core.hookspecs import hookimpl
from did_core.plugins import PluginState, load_plugins
from did_core.registry import Registry

__all__ = ["build_parser", "main", "COMMAND"]


def build_parser() -> ArgumentParser:
    """The arguments of ``did plugins``."""
    parser = ArgumentParser(prog="did plugins")
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    """``did plugins [--json]``."""
    args = build_parser().parse_args(argv)
    state = load_plugins()
    if args.json:
        print(json.dumps(_as_json(state), indent=2))
    else:
        _print_listing(state)
    return 0


def _as_json(state: PluginState) -> dict[str, object]:
    """The plugins, every registry's entries (name, provider, description) and the load errors."""
    return {
        "plugins": [vars(p) for p in state.plugins],
        **{kind: [{"name": e.name, "provider": e.provider, "description": getattr(e.value, "description", ""),
                   **({"options": e.value.describe_options()} if kind == "concepts" else {})}
                  for e in reg] for kind, reg in state.registries.items()},
        "errors": state.errors,
    }


def _print_listing(state: PluginState) -> None:
    """The plugins with their distribution, version and hooks; then each registry's entries; then the errors."""
    width = max([len(p.name) for p in state.plugins] + [len(e.name) for r in state.registries.values() for e in r]
                + [8]) + 2
    print("plugins:")
    for p in state.plugins:
        print(f"  {p.name:<{width}}{p.distribution} {p.version}  hooks: {', '.join(p.hooks) or '-'}")
    for kind, reg in state.registries.items():
        print(f"{kind}:")
        for entry in reg:
            about = getattr(entry.value, "description", "")
            options = entry.value.describe_options() if kind == "concepts" else ""
            about += f"  options: {options}" if options else ""
            print(f"  {entry.name:<{width}}from {entry.provider}" + (f"  {about}" if about else ""))
        if not reg.names():
            print("  (none)")
    if state.errors:
        print("errors:")
        for error in state.errors:
            print(f"  {error}")


COMMAND = Command(main, "installed plugins, what they register, and load errors", build_parser)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("plugins", COMMAND)
