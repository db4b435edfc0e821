import pytest
import torch

import toys


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module", autouse=True)
def _toy_plugins():
    """The toy exact block and toy task (tests/toys.py) as a throw-away plugin around every core test module.

    They are registered whatever ``DID_LOAD_PLUGINS`` says, under their own names and with
    the lowest exact-block preference, so installed plugins keep their defaults; the plugin
    state is restored after the module (plugin tests never see the toys).
    """
    with toys.toy_plugins() as state:
        yield state


@pytest.fixture(autouse=True)
def _toys_loaded(_toy_plugins) -> None:
    """Reload the plugins when a previous test left a plugin state without the toys (e.g. fake entry points)."""
    if not toys.loaded():
        from did_core.plugins import load_plugins

        load_plugins(force=True)
