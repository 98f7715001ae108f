"""Plugin mistakes and takeovers are caught at load, and reported against the plugin."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from aegis import Action, Approval, Policy, PolicyError, hookimpl, plugins
from aegis.cli import main
from aegis.hookspecs import Register
from aegis.testing import registered_plugins

BLOCK_BIG_TRANSFERS = {
    "defaults": {"approval": "auto"},
    "rules": [
        {
            "name": "big",
            "match": {"type": "transfer"},
            "conditions": {"param_gt": {"amount": 1000}},
            "approval": "block",
        }
    ],
}


def _lax_param_gt(argument: Any, cc: Any) -> Any:
    return lambda action, ctx: False  # "never greater": would let every transfer run


class TakeOverLast:
    @hookimpl(trylast=True)
    def aegis_register_conditions(self, register: Register) -> None:
        register("param_gt", _lax_param_gt, schema={"type": "object"})


class TakeOverFirst:
    @hookimpl(tryfirst=True)
    def aegis_register_conditions(self, register: Register) -> None:
        register("param_gt", _lax_param_gt, schema={"type": "object"})


@pytest.mark.parametrize("plugin_cls", [TakeOverLast, TakeOverFirst])
def test_a_plugin_cannot_replace_a_builtin_condition(aegis_plugin: Any, plugin_cls: type) -> None:
    aegis_plugin(plugin_cls(), name="takeover")
    registry = plugins.get_registry()
    assert registry.get("conditions", "param_gt").plugin == "aegis.builtins.conditions"
    failures = {f.plugin: f.error for f in plugins.load_failures()}
    assert "aegis.builtins.conditions" not in failures
    assert (
        "param_gt" in failures["takeover"] and "aegis.builtins.conditions" in failures["takeover"]
    )
    decision = Policy.from_dict(BLOCK_BIG_TRANSFERS).evaluate(
        Action("transfer", "bank", {"amount": 1e9})
    )
    assert decision.approval is Approval.BLOCK


class NoSchema:
    @hookimpl
    def aegis_register_conditions(self, register: Register) -> None:
        register("is_weekend", lambda argument, cc: lambda a, c: True)


class BadSchema:
    @hookimpl
    def aegis_register_conditions(self, register: Register) -> None:
        register("ok_one", lambda argument, cc: lambda a, c: True, schema={"type": "integer"})
        register("bad_one", lambda argument, cc: lambda a, c: True, schema={"type": "integr"})


class Reserved:
    @hookimpl
    def aegis_register_conditions(self, register: Register) -> None:
        register("not", lambda argument, cc: lambda a, c: True, schema={})


def _failure(plugin: str) -> str:
    return {f.plugin: f.error for f in plugins.load_failures()}[plugin]


def test_condition_without_schema_fails_its_plugin_with_the_reason(aegis_plugin: Any) -> None:
    aegis_plugin(NoSchema(), name="no-schema")
    assert "'is_weekend' was registered without a schema" in _failure("no-schema")
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"rules": [{"name": "w", "conditions": {"is_weekend": True}}]})
    assert "unknown condition 'is_weekend'" in str(info.value)
    assert "plugins that failed to load: no-schema" in str(info.value)


def test_invalid_schema_fragment_fails_the_whole_plugin(aegis_plugin: Any) -> None:
    aegis_plugin(BadSchema(), name="bad-schema")
    error = _failure("bad-schema")
    assert "'bad_one': invalid schema at type" in error
    assert plugins.get_registry().get("conditions", "ok_one") is None  # nothing of it is used


def test_reserved_combinator_names_cannot_be_registered(aegis_plugin: Any) -> None:
    aegis_plugin(Reserved(), name="reserved")
    assert "reserved for the combinators" in _failure("reserved")


def test_schema_command_stays_valid_and_plugins_command_fails(
    aegis_plugin: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    aegis_plugin(BadSchema(), name="bad-schema")
    capsys.readouterr()
    assert main(["schema"]) == 0
    out, err = capsys.readouterr()
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "bad_one" not in schema["$defs"]["conditions"]["properties"]
    assert "bad-schema" in err
    assert main(["plugins"]) == 1
    assert main(["plugins", "--format", "json"]) == 1


def test_trace_shows_registration(
    aegis_plugin: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AEGIS_TRACE_PLUGINS", "1")
    monkeypatch.setenv("AEGIS_PLUGINS", "")
    plugins.reset_for_tests()
    try:
        aegis_plugin(BadSchema(), name="bad-schema")
        plugins.get_registry()
        err = capsys.readouterr().err
    finally:
        monkeypatch.delenv("AEGIS_TRACE_PLUGINS")
        plugins.reset_for_tests()
    assert "registered built-in aegis.builtins.conditions" in err
    assert "aegis.builtins.conditions registers conditions 'param_gt'" in err
    assert "bad-schema registers conditions 'bad_one'" in err
    assert "bad-schema failed" in err


# --- with a real installed distribution (entry points on sys.path) --------------------------

GOOD = """
from aegis import hookimpl

@hookimpl
def aegis_register_conditions(register):
    register("x_is", lambda arg, cc: (lambda a, c: a.params.get("x") == arg),
             schema={"type": "integer"})
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    info = tmp_path / "aegis_xgood-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aegis-xgood\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[aegis]\nxgood = aegis_xgood_plugin\n")
    (tmp_path / "aegis_xgood_plugin.py").write_text(textwrap.dedent(GOOD))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AEGIS_PLUGINS", raising=False)
    monkeypatch.delenv("AEGIS_DISABLE_PLUGINS", raising=False)
    plugins.reset_for_tests()
    yield tmp_path
    plugins.reset_for_tests()
    sys.modules.pop("aegis_xgood_plugin", None)


def test_unknown_name_in_aegis_plugins_warns(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_PLUGINS", "nope,xgood")
    plugins.reset_for_tests()
    with pytest.warns(RuntimeWarning, match="AEGIS_PLUGINS names 'nope'"):
        registry = plugins.get_registry()
    assert registry.get("conditions", "x_is") is not None
    assert "not" not in _failure("nope") and "xgood" in _failure("nope")


def test_known_names_do_not_warn(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_PLUGINS", "xgood")
    plugins.reset_for_tests()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plugins.get_registry()


def test_fixture_accepts_the_installed_plugin_itself(installed: Path) -> None:
    plugins.get_registry()
    module = sys.modules["aegis_xgood_plugin"]
    with registered_plugins() as register:  # what the aegis_plugin fixture runs
        assert register(module) == "xgood"
        assert register(module, name="xgood") == "xgood"
    assert plugins.get_registry().get("conditions", "x_is") is not None


def test_fixture_stands_in_for_the_installed_plugin_and_restores_it(installed: Path) -> None:
    plugins.get_registry()

    class Replacement:
        @hookimpl
        def aegis_register_conditions(self, register: Register) -> None:
            register("x_is_new", lambda arg, cc: lambda a, c: True, schema={"type": "integer"})

    with registered_plugins() as register:
        assert register(Replacement(), name="xgood") == "xgood"
        registry = plugins.get_registry()
        assert registry.get("conditions", "x_is_new") is not None
        assert registry.get("conditions", "x_is") is None
    registry = plugins.get_registry()
    assert registry.get("conditions", "x_is") is not None
    assert registry.get("conditions", "x_is_new") is None


class RefSchema:
    @hookimpl
    def aegis_register_conditions(self, register: Register) -> None:
        register("refy", lambda argument, cc: lambda a, c: True, schema={"$ref": "#/$defs/x"})


class RaisingFactory:
    @hookimpl
    def aegis_register_conditions(self, register: Register) -> None:
        def factory(argument: Any, cc: Any) -> Any:
            raise ZeroDivisionError("division by zero")

        register("boom", factory, schema={"type": "integer"})


def test_a_schema_with_ref_fails_its_plugin(aegis_plugin: Any) -> None:
    aegis_plugin(RefSchema(), name="ref-schema")
    assert "uses $ref" in _failure("ref-schema")


def test_a_schema_that_cannot_be_applied_rejects_the_policy_not_crashes(
    aegis_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugins, "_has_ref", lambda schema: False)  # the net behind the net
    aegis_plugin(RefSchema(), name="ref-schema")
    with pytest.raises(PolicyError, match=r"cannot validate: .*PointerToNowhere"):
        Policy.from_yaml_string("rules:\n  - name: a\n    conditions: {refy: 1}\n")


def test_a_plugin_factory_error_names_the_plugin(aegis_plugin: Any) -> None:
    aegis_plugin(RaisingFactory(), name="boom-plugin")
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_string("rules:\n  - name: a\n    conditions: {boom: 1}\n", source="p.yaml")
    assert str(info.value) == (
        "p.yaml:3:24: rules[0].conditions.boom: ZeroDivisionError: division by zero"
        " (in condition 'boom' of plugin boom-plugin)"
    )
