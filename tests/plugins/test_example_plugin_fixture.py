"""The ``aegis_plugin`` fixture on a plugin that is really installed (``nox -s plugin_wheel``)."""

from __future__ import annotations

from typing import Any

from aegis import hookimpl, plugins
from aegis.hookspecs import Register


def test_fixture_accepts_the_installed_plugin_module(aegis_plugin: Any) -> None:
    import aegis_example_plugin.plugin as installed

    assert aegis_plugin(installed) == "example"
    assert aegis_plugin(installed, name="example") == "example"
    registration = plugins.get_registry().get("conditions", "param_multiple_of")
    assert registration is not None and registration.plugin == "example"


class StandIn:
    @hookimpl
    def aegis_register_conditions(self, register: Register) -> None:
        register("stand_in", lambda argument, cc: lambda a, c: True, schema={"type": "integer"})


def test_fixture_can_stand_in_for_the_installed_plugin(aegis_plugin: Any) -> None:
    aegis_plugin(StandIn(), name="example")
    registry = plugins.get_registry()
    assert registry.get("conditions", "stand_in") is not None
    assert registry.get("conditions", "param_multiple_of") is None


def test_the_installed_plugin_is_back_after_the_stand_in() -> None:
    registry = plugins.get_registry()
    assert registry.get("conditions", "param_multiple_of") is not None
    assert registry.get("conditions", "stand_in") is None
