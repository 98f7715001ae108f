"""The distribution is found through the ``aegis`` entry point, as ``aegis plugins`` shows it."""

from __future__ import annotations

from aegis import plugins


def test_installed_plugin_is_loaded_from_its_entry_point() -> None:
    infos = {info.name: info for info in plugins.plugin_infos()}
    assert "openai_agents" in infos, sorted(infos)
    info = infos["openai_agents"]
    assert (info.distribution, info.version, info.builtin) == (
        "agent-aegis-openai-agents",
        "0.1.0",
        False,
    )
    assert not plugins.load_failures()
