"""The plugin system: typed registry, entry-point loading, broken plugins, DID_LOAD_PLUGINS."""

import types
from importlib import metadata

import pytest

from did_core import plugins
from did_core.hookspecs import hookimpl
from did_core.registry import DuplicateNameError, Registry, UnknownNameError


def test_registry_refuses_duplicates_naming_both_providers():
    reg = Registry("block")
    reg.providing("dist-a").add("x", dict)
    with pytest.raises(DuplicateNameError, match="dist-a.*dist-b"):
        reg.providing("dist-b").add("x", dict)


def test_unknown_name_lists_known_names():
    reg = Registry("block")
    reg.add("exact", dict)
    reg.add("learned", dict)
    with pytest.raises(UnknownNameError, match="unknown block 'nope'; known: exact, learned"):
        reg.get("nope")


class _FakeEntryPoint:
    def __init__(self, name, module=None, error=None):
        self.name, self.value, self._module, self._error = name, f"fake_{name}:plugin", module, error
        self.dist = types.SimpleNamespace(name=f"did-plugins-{name}", version="9.9")

    def load(self):
        if self._error:
            raise self._error
        return self._module


@pytest.fixture
def fake_entry_points(monkeypatch):
    points = []
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: list(points) if group == "did" else [])
    monkeypatch.delenv("DID_LOAD_PLUGINS", raising=False)  # the fake points are all there is: load every one
    yield points
    plugins.load_plugins(force=True)


def _module(name, **hooks):
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def test_third_party_plugin_registers_and_broken_ones_are_reported(fake_entry_points, capsys):
    good = _module("good", did_register_blocks=lambda register: register.add("toy", dict))
    raising = _module("raising", did_register_samplers=lambda register: 1 / 0)
    misspelt = _module("misspelt", did_register_blockz=lambda register: None)
    fake_entry_points += [
        _FakeEntryPoint("good", good),
        _FakeEntryPoint("broken", error=ImportError("no module named nowhere")),
        _FakeEntryPoint("raising", raising),
        _FakeEntryPoint("misspelt", misspelt),
    ]
    state = plugins.load_plugins(force=True)
    assert state.registries["blocks"].get("toy").provider == "did-plugins-good"
    errors = "\n".join(state.errors)
    assert "did-plugins-broken" in errors and "failed to import" in errors
    assert "did-plugins-raising" in errors and "did_register_samplers failed" in errors
    assert "did_register_blockz" in errors
    assert "plugin error" in capsys.readouterr().err


def test_duplicate_names_across_plugins_are_reported(fake_entry_points):
    a = _module("a", did_register_blocks=lambda register: register.add("same", dict))
    b = _module("b", did_register_blocks=lambda register: register.add("same", list))
    fake_entry_points += [_FakeEntryPoint("a", a), _FakeEntryPoint("b", b)]
    state = plugins.load_plugins(force=True)
    assert any("registered twice" in e for e in state.errors)
    # Load order is no reason to trust either: the name is refused, naming both providers.
    with pytest.raises(DuplicateNameError, match="did-plugins-a and by did-plugins-b"):
        state.registries["blocks"].get("same")
    assert "same" not in state.registries["blocks"]


def test_a_plugin_that_exits_or_takes_a_used_name_is_reported_not_fatal(fake_entry_points):
    def leave(register):
        raise SystemExit(3)

    fake_entry_points += [
        _FakeEntryPoint("exits", error=SystemExit(1)),
        _FakeEntryPoint("exits_in_hook", _module("exits_in_hook", did_register_blocks=leave)),
        _FakeEntryPoint("good", _module("good", did_register_blocks=lambda register: register.add("toy", dict))),
        _FakeEntryPoint("good", _module("impostor", did_register_blocks=lambda register: register.add("x", dict))),
    ]
    state = plugins.load_plugins(force=True)
    errors = "\n".join(state.errors)
    assert "did-plugins-exits (exits): failed to import" in errors and "SystemExit" in errors
    assert "did_register_blocks failed: SystemExit" in errors
    assert "entry-point name 'good' is already taken" in errors
    assert state.registries["blocks"].names() == ["toy"]


def test_did_load_plugins_names_that_match_nothing_are_reported(fake_entry_points, monkeypatch):
    fake_entry_points += [
        _FakeEntryPoint("one", _module("one", did_register_blocks=lambda register: register.add("b1", dict))),
        _FakeEntryPoint("wrong", _module("wrong", did_register_blocks=lambda registry: None)),  # misnamed argument
    ]
    monkeypatch.setenv("DID_LOAD_PLUGINS", "one,wrong,exact_cvz")
    state = plugins.load_plugins(force=True)
    assert any("DID_LOAD_PLUGINS names exact_cvz, which no installed plugin is called" in e for e in state.errors)
    assert any("did-plugins-wrong (wrong):" in e and "plugin not loaded" in e for e in state.errors)
    assert state.registries["blocks"].names() == ["b1"]
    with pytest.raises(UnknownNameError, match="DID_LOAD_PLUGINS='one,wrong,exact_cvz' restricts which plugins load"):
        state.registries["blocks"].get("exact_newton")


def test_did_load_plugins_restricts_loading(fake_entry_points, monkeypatch):
    fake_entry_points += [
        _FakeEntryPoint("one", _module("one", did_register_blocks=lambda register: register.add("b1", dict))),
        _FakeEntryPoint("two", _module("two", did_register_blocks=lambda register: register.add("b2", dict))),
    ]
    monkeypatch.setenv("DID_LOAD_PLUGINS", "two")
    assert plugins.load_plugins(force=True).registries["blocks"].names() == ["b2"]
    monkeypatch.setenv("DID_LOAD_PLUGINS", "")
    state = plugins.load_plugins(force=True)
    assert state.registries["blocks"].names() == []
    assert "p2p" in state.registries["generators"]  # built-ins always load


def test_core_features_are_ordinary_plugins():
    state = plugins.load_plugins(force=True)
    assert state.registries["generators"].get("p2p").provider == "did-core"
