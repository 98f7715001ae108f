"""The OpenTelemetry sink: a span per action with the decision, rule, risk, approval and outcome,
checked with the SDK's in-memory exporter and against an OTLP/HTTP collector stand-in on
127.0.0.1 that decodes the protobuf the real exporter sends."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aegis.adapters.otel import OtelSink
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aegis import (
    Action,
    ApprovalDecision,
    AutoApprovalHandler,
    Policy,
    Result,
    ResultStatus,
    Runtime,
)
from aegis.adapters.base import BaseExecutor
from aegis.errors import AuditError
from aegis.plugins import get_registry
from aegis.runtime.audit import AuditStore

POLICY = {
    "version": "1",
    "defaults": {"risk_level": "medium", "approval": "block"},
    "rules": [
        {"name": "reads", "match": {"type": "read*"}, "risk_level": "low", "approval": "auto"},
        {
            "name": "writes",
            "match": {"type": "write*"},
            "risk_level": "high",
            "approval": "approve",
        },
        {
            "name": "no_deletes",
            "match": {"type": "delete*"},
            "risk_level": "critical",
            "approval": "block",
        },
    ],
}


class Executor(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        if action.target == "broken":
            raise RuntimeError("upstream exploded")
        return Result(action=action, status=ResultStatus.SUCCESS)


class Approving(AutoApprovalHandler):
    async def request_approval(self, action: Any, decision: Any) -> ApprovalDecision:
        return ApprovalDecision(approved=True, approver="alice, bob", reason="looks fine")


async def run_four(url: str, sinks: list[Any]) -> None:
    async with AuditStore(url, sinks=sinks) as store:
        rt = Runtime(
            executor=Executor(),
            policy=Policy.from_dict(POLICY),
            approval_handler=Approving(),
            audit=store,
        )
        await rt.run_one(Action("read_contact", "crm", {"id": 1}, agent_id="a1", session_id="s1"))
        await rt.run_one(Action("write_contact", "crm", {"id": 2}, session_id="s1"))
        await rt.run_one(Action("delete_all", "crm", session_id="s1"))
        await rt.run_one(
            Action("read_file", "broken", chain_id="task-7", parent_agent_id="boss", chain_depth=1)
        )


def by_tool(spans: Any) -> dict[str, Any]:
    return {s.attributes["gen_ai.tool.name"]: s for s in spans}


async def test_a_span_per_action_with_the_governance_attributes(db_url: str) -> None:
    memory = InMemorySpanExporter()
    await run_four(db_url, [OtelSink(exporter=memory)])
    spans = by_tool(memory.get_finished_spans())
    assert set(spans) == {"read_contact", "write_contact", "delete_all", "read_file"}

    read = spans["read_contact"]
    assert read.name == "execute_tool read_contact"
    assert read.attributes["gen_ai.operation.name"] == "execute_tool"
    assert read.attributes["gen_ai.agent.id"] == "a1"
    assert read.attributes["gen_ai.conversation.id"] == "s1"
    assert read.attributes["aegis.decision"] == "auto"
    assert read.attributes["aegis.rule"] == "reads"
    assert read.attributes["aegis.risk_level"] == "LOW"
    assert read.attributes["aegis.outcome"] == "success"
    assert "aegis.params" not in read.attributes  # left out unless asked for
    assert read.end_time >= read.start_time > 0

    write = spans["write_contact"]
    assert write.attributes["aegis.decision"] == "approved"
    assert write.attributes["aegis.approval"] == "approve"
    assert tuple(write.attributes["aegis.approval.approvers"]) == ("alice", "bob")
    assert write.attributes["aegis.approval.reason"] == "looks fine"

    blocked = spans["delete_all"]
    assert blocked.attributes["aegis.decision"] == "blocked"
    assert blocked.attributes["aegis.outcome"] == "blocked"
    assert blocked.attributes["aegis.executed"] is False
    assert blocked.attributes["aegis.risk_level"] == "CRITICAL"

    failed = spans["read_file"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "failed"
    assert failed.attributes["aegis.chain.id"] == "task-7"
    assert failed.attributes["aegis.chain.parent_agent_id"] == "boss"

    # One session is one trace; ids are derived from the record, so a re-sent batch repeats them.
    assert read.context.trace_id == write.context.trace_id == blocked.context.trace_id
    assert failed.context.trace_id != read.context.trace_id
    assert len({s.context.span_id for s in spans.values()}) == 4


class Collector:
    """An OTLP/HTTP traces endpoint on 127.0.0.1: decodes each request; can be told to fail."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.fail_next = 0
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.paths.append(self.path)
                if outer.fail_next:
                    outer.fail_next -= 1
                    self.send_response(400)  # not retried by the exporter: emit must raise
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                outer.requests.append(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[Any]:
        return [
            span
            for req in self.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


def attrs_of(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [v.string_value for v in value.array_value.values]
        else:
            out[kv.key] = getattr(value, kind)
    return out


async def test_spans_reach_an_otlp_http_collector_by_the_registered_name(
    db_url: str, collector: Collector
) -> None:
    await run_four(db_url, [("otel", {"endpoint": collector.url, "service_name": "crm-agent"})])
    spans = collector.spans()
    assert len(spans) == 4 and set(collector.paths) == {"/v1/traces"}
    service = collector.requests[0].resource_spans[0].resource.attributes
    assert {kv.key: kv.value.string_value for kv in service}["service.name"] == "crm-agent"
    write = next(s for s in spans if attrs_of(s)["gen_ai.tool.name"] == "write_contact")
    got = attrs_of(write)
    assert got["aegis.decision"] == "approved"
    assert got["aegis.rule"] == "writes"
    assert got["aegis.risk_level"] == "HIGH"
    assert got["aegis.approval.approvers"] == ["alice", "bob"]
    assert got["aegis.outcome"] == "success"
    assert write.name == "execute_tool write_contact"


async def test_a_collector_that_refuses_a_batch_gets_it_again(
    db_url: str, collector: Collector
) -> None:
    collector.fail_next = 2
    await run_four(db_url, [OtelSink(endpoint=collector.url, timeout=5)])
    ids = sorted(int(attrs_of(s)["aegis.audit.id"]) for s in collector.spans())
    assert ids == [1, 2, 3, 4]  # nothing lost
    assert len(collector.paths) >= 3  # two refusals, then delivered


def test_the_sink_is_registered_and_checks_its_options(tmp_path: Path) -> None:
    assert "otel" in get_registry().names("audit_sinks")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(AuditError, match="timeout"):
        AuditStore(url, sinks=[("otel", {"timeout": 0})])
    with pytest.raises(AuditError, match="unexpected keyword"):
        AuditStore(url, sinks=[("otel", {"endpiont": "http://127.0.0.1:1"})])
    with pytest.raises(AuditError, match="either endpoint or exporter"):
        AuditStore(url, sinks=[("otel", {"endpoint": "x", "exporter": InMemorySpanExporter()})])


def test_params_only_when_asked(db_url: str) -> None:
    import asyncio

    memory = InMemorySpanExporter()
    asyncio.run(run_four(db_url, [OtelSink(exporter=memory, include_params=True)]))
    read = by_tool(memory.get_finished_spans())["read_contact"]
    assert read.attributes["aegis.params"] == '{"id": 1}'
