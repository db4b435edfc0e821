"""The built-in ``did`` subcommands, one module each: ``plugins``, ``solve``, ``train`` (its options and help in
:mod:`did_core.commands.train_help`), ``eval``, ``ship`` and ``design``.

Each module is a default plugin (``did_core.default_plugins.DEFAULT_PLUGINS``) that
registers its command through ``did_register_commands``, exactly as a third-party
plugin registers one: a :class:`did_core.console.Command` whose ``main(argv)``
builds the command's own :class:`did_core.console.ArgumentParser` (``prog="did
solve"``, ...), parses ``argv`` and returns the exit code. ``did_core.cli`` only
dispatches by name; no list of command names exists anywhere else.

Floors: a command module imports what it drives (``did_core.evaluate``,
``did_core.train``, ``did_core.shipped``, ...) and the console helpers
(``did_core.console``); nothing below imports a command module, and the command
modules do not import one another (``train`` uses ``train_help``).
"""
