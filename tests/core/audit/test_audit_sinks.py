"""Sinks are fed from the store: slow or broken sinks never block an action and lose nothing."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from audit_helpers import run_action

from aegis.builtins.sinks import JsonlSink, LoggingSink, WebhookSink
from aegis.errors import AuditError
from aegis.plugins import get_registry
from aegis.runtime.audit import AuditStore
from aegis.runtime.audit.record import AuditRecord
from aegis.runtime.audit.ship import AuditSink, build_sink


class Collecting:
    def __init__(self, name: str = "collect", fail_first: int = 0) -> None:
        self.name = name
        self.fail_first = fail_first
        self.calls = 0
        self.records: list[AuditRecord] = []

    def emit(self, records: Sequence[AuditRecord]) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("sink down")
        self.records.extend(records)

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.records]


class Blocking(Collecting):
    def __init__(self) -> None:
        super().__init__("blocking")
        self.entered = threading.Event()
        self.release = threading.Event()

    def emit(self, records: Sequence[AuditRecord]) -> None:
        self.entered.set()
        if not self.release.wait(30):
            raise TimeoutError("test never released the sink")
        super().emit(records)


async def test_slow_sink_does_not_block_actions(db_url: str) -> None:
    sink = Blocking()
    store = AuditStore(db_url, sinks=[sink])
    await store.open()
    try:
        first = await run_action(store)
        assert await asyncio.to_thread(sink.entered.wait, 30)  # the sink is now stuck in emit
        # Hang guard only (no speed assertion): these must complete while the sink is stuck.
        later = await asyncio.wait_for(
            asyncio.gather(*(run_action(store) for _ in range(20))), timeout=60
        )
        assert sink.records == []
    finally:
        sink.release.set()
        await store.close()
    assert sorted(sink.ids) == sorted([first, *later])


async def test_broken_sink_recovers_and_loses_nothing(db_url: str) -> None:
    sink = Collecting(fail_first=2)
    async with AuditStore(db_url, sinks=[sink]) as store:
        ids = [await run_action(store) for _ in range(10)]
    assert sink.calls > 2
    assert sorted(set(sink.ids)) == ids


async def test_only_final_records_are_shipped_in_final_order(db_url: str) -> None:
    from audit_helpers import Result, ResultStatus, action, decide

    sink = Collecting()
    async with AuditStore(db_url, sinks=[sink]) as store:
        act = action()
        long_running = await store.begin(act, decide(act), None)
        quick = await run_action(store)
        await store.finish(long_running, Result(act, ResultStatus.SUCCESS, attempts=1))
    assert sink.ids == [quick, long_running]
    assert all(r.result != "pending" for r in sink.records)


async def test_restart_resumes_from_saved_cursor(db_url: str) -> None:
    first = Collecting("audit-copy")
    async with AuditStore(db_url, sinks=[first]) as store:
        old = [await run_action(store) for _ in range(5)]
    assert first.ids == old

    second = Collecting("audit-copy")
    async with AuditStore(db_url, sinks=[second]) as store:
        new = [await run_action(store) for _ in range(3)]
    assert second.ids == new  # nothing re-sent, nothing skipped


async def test_records_a_dead_sink_could_not_take_ship_on_next_open(db_url: str) -> None:
    dead = Collecting("mirror", fail_first=10**9)
    async with AuditStore(db_url, sinks=[dead], close_timeout=0.3) as store:
        ids = [await run_action(store) for _ in range(4)]
    assert dead.records == []

    alive = Collecting("mirror")
    async with AuditStore(db_url, sinks=[alive]) as store:
        pass
    assert alive.ids == ids


async def test_async_sink_is_awaited(db_url: str) -> None:
    got: list[int] = []

    class AsyncSink:
        name = "async"

        async def emit(self, records: Sequence[AuditRecord]) -> None:
            await asyncio.sleep(0)
            got.extend(r.id for r in records)

    async with AuditStore(db_url, sinks=[AsyncSink()]) as store:
        ids = [await run_action(store) for _ in range(3)]
    assert got == ids


async def test_jsonl_sink_writes_one_line_per_record(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "out" / "audit.jsonl"
    async with AuditStore(db_url, sinks=[JsonlSink(path, fsync=True)]) as store:
        ids = [await run_action(store) for _ in range(3)]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["id"] for line in lines] == ids
    assert lines[0]["result"] == "success"


async def test_logging_sink(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aegis.audit.records")
    async with AuditStore(db_url, sinks=[LoggingSink()]) as store:
        audit_id = await run_action(store)
    logged = [r for r in caplog.records if r.name == "aegis.audit.records"]
    assert len(logged) == 1
    assert f"audit #{audit_id} read_contact:crm_prod" in logged[0].getMessage()
    assert logged[0].audit["id"] == audit_id  # type: ignore[attr-defined]


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict[str, object]], list[int]]]:
    """A local HTTP endpoint that answers 500 first, then 200; collects bodies."""
    bodies: list[dict[str, object]] = []
    answers = [500]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            code = answers.pop(0) if answers else 200
            if code == 200:
                bodies.append(json.loads(body))
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/audit", bodies, answers
    finally:
        server.shutdown()
        server.server_close()


async def test_webhook_sink_retries_and_delivers(
    db_url: str, webhook_server: tuple[str, list[dict[str, object]], list[int]]
) -> None:
    url, bodies, answers = webhook_server
    async with AuditStore(db_url, sinks=[WebhookSink(url, headers={"X-Test": "1"})]) as store:
        ids = [await run_action(store) for _ in range(3)]
    assert answers == []  # the 500 was answered, then retried
    shipped = [r["id"] for body in bodies for r in body["records"]]  # type: ignore[attr-defined]
    assert shipped == ids


def test_builtin_sinks_are_registered_through_the_hook(tmp_path: Path) -> None:
    names = set(get_registry().of_kind("audit_sinks"))
    assert {"jsonl", "logging", "webhook"} <= names
    sink = build_sink("jsonl", path=tmp_path / "x.jsonl")
    assert isinstance(sink, AuditSink)
    with pytest.raises(AuditError, match="unknown audit sink"):
        build_sink("nope")
    with pytest.raises(AuditError, match="webhook"):
        build_sink("webhook", url="ftp://x")
