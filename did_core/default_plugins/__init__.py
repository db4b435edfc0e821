"""The core's own features, registered through the same hooks as any third-party plugin."""

#: Modules loaded as plugins by ``did_core.plugins.load_plugins``: the core's concepts, generators and policy
#: blocks, and one module per built-in ``did`` subcommand (:mod:`did_core.commands`).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "did_core.default_plugins.concepts",
    "did_core.default_plugins.generators",
    "did_core.default_plugins.policy_blocks",
    "did_core.commands.plugins",
    "did_core.commands.solve",
    "did_core.commands.train",
    "did_core.commands.eval",
    "did_core.commands.ship",
    "did_core.commands.design",
)
