"""Sinks attached by registered name, as the docs show, and checked when the store is made.

A sink the store cannot use used to be accepted and then retried forever in the background
(``"jsonl"`` has no ``emit``), so the trail silently never reached it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import run_action

from aegis.builtins.sinks import JsonlSink, LoggingSink
from aegis.errors import AuditError
from aegis.runtime.audit import AuditStore


async def test_sink_by_name_with_options_receives_records(tmp_path: Path, db_url: str) -> None:
    out = tmp_path / "trail.jsonl"
    async with AuditStore(db_url, sinks=[("jsonl", {"path": out})]) as store:
        assert isinstance(store.sinks[0], JsonlSink)
        audit_id = await run_action(store)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["id"] for rec in lines] == [audit_id]


async def test_sink_by_bare_name(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aegis.audit.records")
    async with AuditStore(db_url, sinks=["logging"]) as store:
        assert isinstance(store.sinks[0], LoggingSink)
        audit_id = await run_action(store)
    assert any(f"audit #{audit_id} " in r.getMessage() for r in caplog.records)


def test_mixed_instances_and_names(tmp_path: Path, db_url: str) -> None:
    mine = JsonlSink(tmp_path / "a.jsonl", name="mine")
    store = AuditStore(db_url, sinks=[mine, ("jsonl", {"path": tmp_path / "b.jsonl"})])
    assert store.sinks[0] is mine
    assert isinstance(store.sinks[1], JsonlSink)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", r"unknown audit sink 'nope' \(registered: .*jsonl"),
        (("nope", {}), "unknown audit sink 'nope'"),
        ("jsonl", "audit sink 'jsonl'.*path"),  # a required option is missing
        (("jsonl", {"path": "x", "colour": "red"}), "audit sink 'jsonl'.*colour"),
        (("webhook", {"url": "ftp://x"}), "http"),
        (("jsonl", "x.jsonl"), "options must be a mapping"),
        (42, "not an audit sink"),
        (object(), "not an audit sink"),
        (("jsonl",), "not an audit sink"),
    ],
)
def test_bad_sink_specs_fail_at_construction(db_url: str, spec: Any, message: str) -> None:
    with pytest.raises(AuditError, match=message):
        AuditStore(db_url, sinks=[spec])


def test_two_sinks_with_one_cursor_name_are_refused(tmp_path: Path, db_url: str) -> None:
    with pytest.raises(AuditError, match="jsonl:same"):
        AuditStore(
            db_url,
            sinks=[
                ("jsonl", {"path": tmp_path / "a", "name": "jsonl:same"}),
                ("jsonl", {"path": tmp_path / "b", "name": "jsonl:same"}),
            ],
        )


def test_a_bare_string_is_not_taken_as_a_list_of_names(db_url: str) -> None:
    with pytest.raises(AuditError, match="a list"):
        AuditStore(db_url, sinks="logging")
