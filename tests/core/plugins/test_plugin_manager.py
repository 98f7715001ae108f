"""The plugin manager, tested with real entry points from a distribution put on sys.path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aegis import hookimpl, plugins
from aegis.hookspecs import Register


def make_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[aegis]\n{eps}\n")
    for name, code in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(code))


GOOD = """
from aegis import hookimpl

def check(arg, ctx):
    return lambda action, ectx: action.params.get("x") == arg

@hookimpl
def aegis_register_conditions(register):
    register("x_is", check, schema={"type": "integer"})

@hookimpl
def aegis_register_executors(register):
    register("noop", object)
"""

BROKEN_IMPORT = "raise ImportError('needs libfoo')\n"

BROKEN_REGISTER = """
from aegis import hookimpl

@hookimpl
def aegis_register_conditions(register):
    register("half_done", lambda a, c: None, schema={})
    raise RuntimeError("oops")
"""

CLASH = """
from aegis import hookimpl

@hookimpl
def aegis_register_approval_handlers(register):
    register("auto", object)  # tries to take over the built-in
    register("fine", object)
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    make_dist(tmp_path, "aegis-good", {"good": "aegis_good_plugin"}, {"aegis_good_plugin": GOOD})
    make_dist(
        tmp_path,
        "aegis-broken",
        {"broken": "aegis_broken_plugin"},
        {"aegis_broken_plugin": BROKEN_IMPORT},
    )
    make_dist(
        tmp_path,
        "aegis-halfway",
        {"halfway": "aegis_halfway_plugin"},
        {"aegis_halfway_plugin": BROKEN_REGISTER},
    )
    make_dist(
        tmp_path, "aegis-clash", {"clash": "aegis_clash_plugin"}, {"aegis_clash_plugin": CLASH}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AEGIS_PLUGINS", raising=False)
    monkeypatch.delenv("AEGIS_DISABLE_PLUGINS", raising=False)
    plugins.reset_for_tests()
    yield tmp_path
    plugins.reset_for_tests()
    for mod in [m for m in sys.modules if m.startswith("aegis_") and m.endswith("_plugin")]:
        del sys.modules[mod]


def test_entry_point_plugins_register_and_failures_are_reported(installed: Path) -> None:
    reg = plugins.get_registry()
    assert reg.get("conditions", "x_is") is not None
    assert reg.get("executors", "noop") is not None
    failures = {f.plugin: f for f in plugins.load_failures()}
    assert "needs libfoo" in failures["broken"].error
    assert failures["broken"].distribution == "aegis-broken"
    # A plugin that fails half-way contributes nothing at all.
    assert "oops" in failures["halfway"].error
    assert reg.get("conditions", "half_done") is None
    # Built-ins win name clashes; the rest of the clashing plugin still loads.
    assert reg.get("approval_handlers", "auto").plugin == "aegis.builtins.approvals"
    assert reg.get("approval_handlers", "fine") is not None
    assert "already registered" in failures["clash"].error


def test_plugin_infos_name_distribution_and_registrations(installed: Path) -> None:
    infos = {i.name: i for i in plugins.plugin_infos()}
    good = infos["good"]
    assert (good.distribution, good.version, good.builtin) == ("aegis-good", "1.2.3", False)
    assert good.registers == {"executors": ("noop",), "conditions": ("x_is",)}
    assert infos["aegis.builtins.approvals"].builtin
    assert "auto" in infos["aegis.builtins.approvals"].registers["approval_handlers"]


def test_aegis_plugins_env_limits_loading(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_PLUGINS", "clash")
    plugins.reset_for_tests()
    names = {i.name for i in plugins.plugin_infos()}
    assert "clash" in names and "good" not in names and "broken" not in names
    assert plugins.get_registry().get("approval_handlers", "cli") is not None  # built-ins stay


def test_empty_aegis_plugins_loads_only_builtins(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_PLUGINS", "")
    plugins.reset_for_tests()
    assert all(i.builtin for i in plugins.plugin_infos())
    assert plugins.load_failures() == []


def test_disable_plugins(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_DISABLE_PLUGINS", "good, broken")
    plugins.reset_for_tests()
    names = {i.name for i in plugins.plugin_infos()}
    assert "good" not in names and "clash" in names
    assert "broken" not in {f.plugin for f in plugins.load_failures()}


def test_fixture_registers_for_one_test(aegis_plugin: Any) -> None:
    class Extra:
        @hookimpl
        def aegis_register_executors(self, register: Register) -> None:
            register("extra", object)

    aegis_plugin(Extra(), name="extra-plugin")
    assert plugins.get_registry().get("executors", "extra") is not None


def test_fixture_cleaned_up_after_previous_test() -> None:
    assert plugins.get_registry().get("executors", "extra") is None


def test_loading_is_lazy() -> None:
    import subprocess

    code = "import aegis, aegis.plugins as p; print(p._state.pm is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
