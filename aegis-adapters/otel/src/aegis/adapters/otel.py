"""OpenTelemetry audit sink: one span per governed action, exported over OTLP/HTTP.

``AuditStore(url, sinks=[("otel", {"endpoint": "http://collector:4318/v1/traces"})])``, or
``OtelSink(...)`` directly. The store's shipper thread calls ``emit`` with committed, final
records, so the sink never sits on an action's path.

Why it exports each batch itself instead of going through a ``TracerProvider``: the SDK's span
processors swallow export failures, and the sink contract is at-least-once (raising means "send
this batch again later"). So ``emit`` builds finished spans from the records and calls the
exporter, and raises when the collector did not take them. Span and trace ids are derived from
the record (its row hash; its delegation chain or session), so a batch sent twice carries the
same ids and a collector or backend can de-duplicate it.

Attributes use the GenAI semantic conventions where one exists (``gen_ai.operation.name`` =
``execute_tool``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.agent.id``,
``gen_ai.conversation.id``, ``error.type``); what governance adds is under ``aegis.*`` (the
decision, the rule, the risk, the approval and approvers, the outcome, the audit hashes).
Params are left out unless ``include_params=True``: they are redacted, but a trace backend is
often read by more people than the audit trail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from aegis.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from aegis.runtime.audit.record import AuditRecord

__all__ = ["OtelSink", "record_span"]

_SCOPE = InstrumentationScope("aegis.adapters.otel", "0.1.0")
#: Outcomes that mean the action went wrong once it was allowed (a span status of ERROR).
_ERRORS = frozenset({"failed", "interrupted"})


class OtelSink:
    """Exports each final audit record as a span.

    ``endpoint``: the OTLP/HTTP traces URL (default: the exporter's own, from
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    ``http://localhost:4318/v1/traces``); ``headers`` e.g. an API key; ``exporter``: any
    ``SpanExporter`` instead (the SDK's ``InMemorySpanExporter`` in tests, another protocol).
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        service_name: str = "aegis",
        include_params: bool = False,
        exporter: SpanExporter | None = None,
        name: str = "",
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=endpoint, headers=dict(headers or {}), timeout=timeout
            )
        elif endpoint is not None:
            raise ValueError("give either endpoint or exporter, not both")
        self.exporter = exporter
        self.resource = Resource.create({"service.name": service_name})
        self.include_params = include_params
        self.name = name or f"otel:{endpoint or 'default'}"

    def emit(self, records: Sequence[AuditRecord]) -> None:
        spans = [record_span(r, self.resource, include_params=self.include_params) for r in records]
        result = self.exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            raise ConnectionError(f"the OpenTelemetry exporter did not take {len(spans)} span(s)")

    def close(self) -> None:
        self.exporter.shutdown()


def _id(text: str, nbytes: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:nbytes], "big")
    return value or 1  # an all-zero id is invalid in OpenTelemetry


def _ns(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1e9)


def record_span(
    record: AuditRecord, resource: Resource | None = None, *, include_params: bool = False
) -> ReadableSpan:
    """The finished span for one audit record (start: when it was asked; end: its outcome)."""
    if record.chain_id:
        trace_key = f"aegis-chain\n{record.chain_id}"
    elif record.session_id:
        trace_key = f"aegis-session\n{record.session_id}"
    else:
        trace_key = f"aegis-record\n{record.row_hash}"
    context = SpanContext(
        trace_id=_id(trace_key, 16),
        span_id=_id(record.row_hash, 8),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    if record.result in _ERRORS:
        status = Status(StatusCode.ERROR, record.error or record.reason or record.result)
    else:
        status = Status(StatusCode.UNSET)
    start = _ns(record.created_at)
    return ReadableSpan(
        name=f"execute_tool {record.action_type}",
        context=context,
        resource=resource or Resource.create({"service.name": "aegis"}),
        attributes=attributes(record, include_params=include_params),
        kind=SpanKind.INTERNAL,
        status=status,
        start_time=start,
        end_time=_ns(record.finished_at) or start,
        instrumentation_scope=_SCOPE,
    )


def attributes(record: AuditRecord, *, include_params: bool = False) -> dict[str, Any]:
    """Span attributes; those without a value are left out (OpenTelemetry has no null)."""
    approvers = [a.strip() for a in (record.approver or "").split(",") if a.strip()]
    values: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": record.action_type,
        "gen_ai.tool.call.id": str(record.id),
        "gen_ai.agent.id": record.agent_id,
        "gen_ai.conversation.id": record.session_id,
        "error.type": record.result if record.result in _ERRORS else None,
        "aegis.target": record.target,
        "aegis.decision": record.decision,
        "aegis.rule": record.matched_rule,
        "aegis.risk_level": record.risk_level,
        "aegis.approval": record.approval,
        "aegis.approval.approvers": approvers or None,
        "aegis.approval.reason": record.approval_reason,
        "aegis.outcome": record.result,
        "aegis.outcome.reason": record.reason,
        "aegis.outcome.error": record.error,
        "aegis.executed": record.executed,
        "aegis.attempts": record.attempts,
        "aegis.verified": record.verified,
        "aegis.duration_ms": record.duration_ms,
        "aegis.unknown_conditions": list(record.unknown_conditions) or None,
        "aegis.policy.fingerprint": record.policy_fingerprint,
        "aegis.chain.id": record.chain_id,
        "aegis.chain.parent_agent_id": record.parent_agent_id,
        "aegis.chain.depth": record.chain_depth,
        "aegis.audit.id": record.id,
        "aegis.audit.row_hash": record.row_hash,
        "aegis.audit.result_hash": record.result_hash,
    }
    if include_params:
        values["aegis.params"] = json.dumps(record.params, ensure_ascii=False, sort_keys=True)
    return {k: v for k, v in values.items() if v is not None}


@hookimpl
def aegis_register_audit_sinks(register: Register) -> None:
    register(
        "otel",
        OtelSink,
        description="OpenTelemetry: a span per action over OTLP/HTTP (endpoint=, headers=)",
    )
