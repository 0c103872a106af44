"""The one registry class behind benchmarks, trainers, engines, knobs and suites."""

import sys

import pytest

from mmbench.errors import MmbenchError
from mmbench.registry import Registry
from plugin_site import install_plugin


def test_builtins_are_loaded_lazily_and_cached(tmp_path, monkeypatch):
    install_plugin(tmp_path, "lazy-probe", {}, {"lazy_probe.py": "import sys\nsys.LAZY_LOADS = getattr(sys, 'LAZY_LOADS', 0) + 1\nVALUE = {'x': 1}\n"},
                   monkeypatch)
    registry = Registry("widget", builtins={"probe": "lazy_probe:VALUE", "plain": 7})
    assert registry.names() == ["probe", "plain"]
    assert "lazy_probe" not in sys.modules  # listing names imports nothing
    assert registry.get("probe") == {"x": 1} and registry.get("probe") is registry.get("probe")
    assert sys.LAZY_LOADS == 1 and registry.get("plain") == 7


def test_entry_points_add_but_never_shadow(tmp_path, monkeypatch):
    install_plugin(tmp_path, "widgets-extra", {"mmbench.widgets": {"extra": "widgets_extra:EXTRA", "plain": "widgets_extra:SHADOW"}},
                   {"widgets_extra.py": "EXTRA = 'from a plug-in'\nSHADOW = 'shadow'\n"}, monkeypatch)
    registry = Registry("widget", builtins={"plain": ("builtin",)})
    assert registry.names() == ["plain", "extra"]
    assert registry.get("extra") == "from a plug-in" and registry.get("plain") == ("builtin",)


def test_unknown_name_says_did_you_mean():
    registry = Registry("suite", builtins={"world": 1, "hub": 2})
    with pytest.raises(MmbenchError, match=r"unknown suite 'wrold' — did you mean 'world'\? \(known: world, hub\)"):
        registry.get("wrold")


def test_factories_give_fresh_objects_and_broken_plugins_are_one_line():
    registry = Registry("trainer", builtins={"list": "builtins:list", "broken": "no_such_module_xyz:Thing"}, factory=True)
    assert registry.get("list") == [] and registry.get("list") is not registry.get("list")
    with pytest.raises(MmbenchError, match="trainer 'broken' could not be loaded"):
        registry.get("broken")


def test_register_at_run_time():
    registry = Registry("engine", builtins={"mmbench": 1})
    registry.register("mine", 2)
    assert registry.get("mine") == 2 and "mine" in registry
    registry.unregister("mine")
    assert "mine" not in registry
