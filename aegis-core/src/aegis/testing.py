"""Pytest support for plugin authors (loaded through the ``pytest11`` entry point).

``aegis_plugin`` registers a plugin for one test and removes it afterwards::

    def test_my_condition(aegis_plugin):
        aegis_plugin(MyPlugin())
        policy = Policy.from_dict({...uses my condition...})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from aegis import plugins


@pytest.fixture
def aegis_plugin() -> Iterator[Callable[..., str]]:
    names: list[str] = []

    def register(plugin: object, name: str | None = None) -> str:
        registered = plugins.register_plugin(plugin, name=name)
        names.append(registered)
        return registered

    yield register
    for name in reversed(names):
        plugins.unregister_plugin(name)
