"""Secrets never reach the audit database (or anything shipped from it)."""

from __future__ import annotations

import re

import pytest
from audit_helpers import Result, ResultStatus, action, decide, raw, run_action

from aegis.core.redact import REDACTED, Redactor
from aegis.runtime.audit import AuditStore

R = Redactor()


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "Authorization",
        "access_token",
        "refreshToken",
        "client_secret",
        "AWS_SECRET_ACCESS_KEY",
        "private_key",
        "Cookie",
        "credentials",
    ],
)
def test_secret_keys_are_redacted_whatever_the_value(key: str) -> None:
    assert R.redact({key: "hunter2"}) == {key: REDACTED}
    assert R.redact({key: 12345}) == {key: REDACTED}
    assert R.redact({key: {"nested": "x"}}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["max_tokens", "author", "tokens_used", "keyboard", "id", "count"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert R.redact({key: 100}) == {key: 100}


@pytest.mark.parametrize(
    ("value", "leak"),
    [
        ("Bearer eyJhbGciOiJIUzI1NiJ9.abc", "eyJhbGciOiJIUzI1NiJ9"),
        ("use sk-proj-abcdefghijklmnop1234 please", "sk-proj-abcdefghijklmnop1234"),
        ("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
        ("ghp_" + "a" * 36, "ghp_"),
        ("xoxb-1234567890-abcdefghij", "xoxb-1234567890"),
        ("eyJhbGciOiJI.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "SflKxwRJSMeKKF2QT4"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "MIIE"),
        ("postgres://admin:s3cr3t@db:5432/app", "s3cr3t"),
        ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ],
)
def test_secret_looking_values_are_redacted_anywhere(value: str, leak: str) -> None:
    out = R.redact({"note": value, "list": [value], "deep": {"x": [{"y": value}]}})
    text = repr(out)
    assert leak not in text
    assert REDACTED in out["note"]


def test_text_around_a_secret_is_kept() -> None:
    assert R.redact_text("curl -H 'Authorization: Bearer abc123'") == (
        f"curl -H 'Authorization: {REDACTED}'"
    )


def test_configurable_extra_keys_patterns_and_off() -> None:
    custom = Redactor(extra_keys=("ssn",), extra_patterns=(r"\b\d{3}-\d{2}-\d{4}\b",))
    assert custom.redact({"ssn": "x", "note": "id 123-45-6789"}) == {
        "ssn": REDACTED,
        "note": f"id {REDACTED}",
    }
    assert custom.redact({"password": "p"}) == {"password": REDACTED}  # defaults still apply
    off = Redactor.disabled()
    assert off.redact({"password": "p", "h": "Bearer x"}) == {"password": "p", "h": "Bearer x"}
    with pytest.raises(re.error):
        Redactor(extra_patterns=("(",))  # a broken pattern fails at configuration, not later


def test_input_is_not_mutated() -> None:
    params = {"password": "p", "nested": {"token": "t"}}
    R.redact(params)
    assert params == {"password": "p", "nested": {"token": "t"}}


async def test_store_never_writes_the_secret(store: AuditStore, db_url: str) -> None:
    act = action(
        params={"user": "bob", "password": "hunter2", "headers": {"Authorization": "Bearer zz9"}},
        description="login with sk-abcdefghijklmnopqrstu",
    )
    audit_id = await run_action(
        store, act, ResultStatus.FAILED, error="401 for token ghp_" + "b" * 36
    )
    await store.record(
        Result(act, ResultStatus.BLOCKED, decision=decide(act), reason="Bearer zz9 rejected")
    )
    dump = repr(raw(db_url, "SELECT * FROM aegis_audit"))
    for secret in ("hunter2", "zz9", "sk-abcdefghijklmnopqrstu", "b" * 36):
        assert secret not in dump
    rec = store.get(audit_id)
    assert rec is not None
    assert rec.params == {
        "user": "bob",
        "password": REDACTED,
        "headers": {"Authorization": REDACTED},
    }
    assert store.verify().ok  # the chain covers the redacted text


async def test_store_with_redaction_off_keeps_params(db_url: str) -> None:
    async with AuditStore(db_url, redactor=Redactor.disabled()) as store:
        audit_id = await run_action(store, action(params={"password": "p"}))
        assert store.get(audit_id).params == {"password": "p"}  # type: ignore[union-attr]
