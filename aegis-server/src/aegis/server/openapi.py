"""What ``/schema`` says the API answers, checked by schemathesis (``response_schema_conformance``
and the other conformance checks) against the running server.

The handlers build plain dicts (the same ones an execution row stores, so any replica answers
alike); the structs here only describe them. Shapes the core owns (an audit record, an approval
request, a policy version) are documented as objects: their fields are the core's to grow.

``tighten`` corrects what Litestar 2 leaves out of the generated document: request bodies that
refuse unknown fields say ``additionalProperties: false``; an optional body is not "required";
and the headers of 401, 429 and 503 are named.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    RequestBody,
    Schema,
)

Risk = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
Obj = dict[str, Any]
NULL, STRING = OpenAPIType.NULL, Schema(type=OpenAPIType.STRING)


class Decision(msgspec.Struct):
    action_type: str
    target: str
    risk_level: Risk
    approval: Literal["auto", "approve", "block"]
    is_allowed: bool
    matched_rule: str | None
    reason: str | None


class Finished(msgspec.Struct):
    """An execution's final answer: a result, an authorisation, or ``interrupted``."""

    execution_id: str
    status: Literal[
        "success", "failed", "blocked", "denied", "skipped", "authorized", "interrupted"
    ]
    executed: bool | None
    audit_id: int | None
    reason: str | None
    approver: str | None = None
    error: str | None = None
    data: Any = None
    outcome_url: str | None = None
    report_within_s: float | None = None
    decision_reason: str | None = None
    action_type: str | None = None
    target: str | None = None
    risk_level: Risk | None = None
    approval: str | None = None
    is_allowed: bool | None = None
    matched_rule: str | None = None


class Pending(msgspec.Struct):
    """Not final yet: poll ``status_url`` (``?wait=S`` long-polls)."""

    execution_id: str
    status_url: str
    status: Literal["pending_approval", "running"]
    request_id: str | None = None
    expires_at: str | None = None
    who_may_answer: str | None = None
    approve_url: str | None = None


class Reported(msgspec.Struct):
    audit_id: int
    status: str


class Answered(msgspec.Struct):
    accepted: bool
    state: str
    message: str | None


class Health(msgspec.Struct):
    status: str


class Ready(msgspec.Struct):
    status: str
    db_ms: float


class AuditPage(msgspec.Struct):
    records: list[Obj]
    next_cursor: int | None


class Verified(msgspec.Struct):
    ok: bool
    report: Any


class InForce(msgspec.Struct):
    """The policy in force (``version`` and the rest only when it is versioned)."""

    fingerprint: str | None
    policy: Obj | None
    version: int | None = None
    yaml: str | None = None
    author: str | None = None
    created_at: str | None = None


class StoredVersion(msgspec.Struct):
    version: int
    author: str
    fingerprint: str
    created_at: str
    in_force: int | None = None
    changed: bool | None = None
    yaml: str | None = None


class Versions(msgspec.Struct):
    in_force: int
    versions: list[Obj]


class Simulated(msgspec.Struct):
    version: int | None
    fingerprint: str | None
    stored: bool
    decisions: list[Decision]


class PolicyDiff(msgspec.Struct):
    text: str
    sampled: Obj
    old: int = msgspec.field(name="from")
    new: int = msgspec.field(name="to")


_HEADERS = {"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}


def tighten(app: Litestar) -> None:
    """Correct the generated document in place (it is built once and served from cache)."""
    spec = app.openapi_schema
    strict = {c.__name__ for c in _structs() if c.__struct_config__.forbid_unknown_fields}
    for name, schema in (spec.components.schemas or {}).items():
        if name in strict:
            schema.additional_properties = False
    for path, item in (spec.paths or {}).items():
        for op in (item.get, item.put, item.post):
            if op is None:
                continue
            body = op.request_body
            media = body.content.get("application/json") if isinstance(body, RequestBody) else None
            if (
                isinstance(body, RequestBody)
                and media is not None
                and isinstance(media.schema, Schema)
            ):
                kinds = media.schema.one_of or []
                if any(isinstance(s, Schema) and s.type == NULL for s in kinds):
                    body.required = False  # ``Body | None = None``: null, or no body at all
            for code, response in (op.responses or {}).items():
                header = _HEADERS.get(code)
                if header and isinstance(response, OpenAPIResponse) and path != "/ready":
                    response.headers = {header: OpenAPIHeader(schema=STRING, required=True)}


def _structs() -> list[type[msgspec.Struct]]:
    """Every struct defined in the server package (request bodies among them)."""
    out: list[type[msgspec.Struct]] = []
    todo = list(msgspec.Struct.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("aegis.server."):
            out.append(cls)
    return out
