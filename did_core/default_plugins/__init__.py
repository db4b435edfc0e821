"""The core's own features, registered through the same hooks as any third-party plugin."""

#: Modules loaded as plugins by ``did_core.plugins.load_plugins``.
DEFAULT_PLUGINS: tuple[str, ...] = ("did_core.default_plugins.concepts", "did_core.default_plugins.generators")
