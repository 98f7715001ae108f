from __future__ import annotations

import datetime as dt

import pytest

from aegis.cli.errors import CliError, ExitCode
from aegis.cli.parsing import (
    parse_action_spec,
    parse_datetime,
    parse_params,
    parse_since,
    parse_value,
    set_dotted,
)


def test_action_spec_splits_on_first_colon_only() -> None:
    assert parse_action_spec("read:crm") == ("read", "crm")
    assert parse_action_spec("get:https://x.test/a") == ("get", "https://x.test/a")


@pytest.mark.parametrize("spec", ["read", ":crm", "read:", " : "])
def test_action_spec_rejects_malformed(spec: str) -> None:
    with pytest.raises(CliError) as info:
        parse_action_spec(spec)
    assert info.value.code is ExitCode.USAGE
    assert repr(spec) in info.value.message


def test_values_are_json_when_possible() -> None:
    assert parse_value("150") == 150
    assert parse_value("1.5") == 1.5
    assert parse_value("true") is True
    assert parse_value('["a", 2]') == ["a", 2]
    assert parse_value("crm_prod") == "crm_prod"
    assert parse_value("") == ""


def test_params_nest_dotted_keys() -> None:
    assert parse_params(["count=150", "amount.value=5", "amount.currency=EUR", "q=a=b"]) == {
        "count": 150,
        "amount": {"value": 5, "currency": "EUR"},
        "q": "a=b",
    }
    assert parse_params(None) == {}


@pytest.mark.parametrize("item", ["count", "=5", "a..b=1", "a.=1"])
def test_params_reject_malformed(item: str) -> None:
    with pytest.raises(CliError):
        parse_params([item])


def test_params_reject_conflicting_shapes() -> None:
    with pytest.raises(CliError):
        parse_params(["a=1", "a.b=2"])
    with pytest.raises(CliError):
        parse_params(["a.b=2", "a=1"])


def test_since_relative_spans() -> None:
    now = dt.datetime(2026, 3, 21, 12, 0, tzinfo=dt.UTC)
    assert parse_since("1h", now=now) == now - dt.timedelta(hours=1)
    assert parse_since("30m", now=now) == now - dt.timedelta(minutes=30)
    assert parse_since("2d", now=now) == now - dt.timedelta(days=2)
    assert parse_since("45s", now=now) == now - dt.timedelta(seconds=45)
    assert parse_since("1w", now=now) == now - dt.timedelta(weeks=1)


def test_since_iso_and_naive_means_local() -> None:
    aware = parse_since("2026-03-21T10:00:00+00:00")
    assert aware == dt.datetime(2026, 3, 21, 10, tzinfo=dt.UTC)
    naive = parse_datetime("2026-03-21T10:00", option="--at")
    assert naive.tzinfo is not None
    assert naive.replace(tzinfo=None) == dt.datetime(2026, 3, 21, 10)


@pytest.mark.parametrize("text", ["yesterday", "1y", "-1h", ""])
def test_since_rejects_garbage(text: str) -> None:
    with pytest.raises(CliError) as info:
        parse_since(text)
    assert "--since" in info.value.message


def test_set_dotted_on_round_trip_yaml_keeps_comments() -> None:
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    doc = yaml.load("# top\ndefaults:\n  approval: approve  # who decides\nrules:\n- name: a\n")
    set_dotted(doc, "defaults.approval", "block")
    set_dotted(doc, "rules.0.name", "b")
    set_dotted(doc, "new.key", 1)
    out = io.StringIO()
    yaml.dump(doc, out)
    text = out.getvalue()
    assert "# top" in text and "# who decides" in text
    assert "approval: block" in text and "name: b" in text and "key: 1" in text
    for bad in ("rules.5.name", "rules.x", "defaults.approval.deeper", ""):
        with pytest.raises(CliError):
            set_dotted(doc, bad, 1)
