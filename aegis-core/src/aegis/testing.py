"""Pytest support for plugin authors (loaded through the ``pytest11`` entry point).

``aegis_plugin`` registers a plugin for one test and removes it afterwards::

    def test_my_condition(aegis_plugin):
        aegis_plugin(MyPlugin())
        policy = Policy.from_dict({...uses my condition...})

It also works when the plugin under test is installed (its entry point already loaded it): the
same object is left as it is, and a different object under the installed plugin's name stands
in for it during the test, the installed one coming back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from aegis import plugins
from aegis.errors import PluginError


@contextlib.contextmanager
def registered_plugins() -> Iterator[Callable[..., str]]:
    """What ``aegis_plugin`` does, usable outside pytest: ``with registered_plugins() as add:``."""
    added: list[str] = []
    displaced: list[tuple[str, object]] = []

    def register(plugin: object, name: str | None = None) -> str:
        pm = plugins.get_plugin_manager()
        if pm.is_registered(plugin):  # installed and loaded already: nothing to add or undo
            return str(pm.get_name(plugin))
        if name is not None and pm.has_plugin(name):
            if name in plugins.DEFAULT_PLUGINS:
                raise PluginError(f"{name!r} is a built-in plugin name")
            displaced.append((name, pm.get_plugin(name)))
            plugins.unregister_plugin(name)
        registered = plugins.register_plugin(plugin, name=name)
        added.append(registered)
        return registered

    try:
        yield register
    finally:
        for name in reversed(added):
            plugins.unregister_plugin(name)
        for name, installed in reversed(displaced):
            plugins.register_plugin(installed, name=name)


@pytest.fixture
def aegis_plugin() -> Iterator[Callable[..., str]]:
    with registered_plugins() as register:
        yield register
