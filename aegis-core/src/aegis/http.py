"""Framework-neutral HTTP request and response, for routes that plugins add to ``aegis serve``.

Channel plugins (Slack interactivity, Discord interactions, Telegram webhooks, e-mail links)
receive signed callbacks over HTTP. They register plain async handlers through
``aegis_register_routes`` and never import the server's web framework: the server turns each
request into an ``HttpRequest`` (with the raw body, which signature checks need byte for
byte) and each ``HttpResponse`` back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from aegis.runtime.approval.channels import Responder
    from aegis.runtime.audit import AuditStore


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@attrs.frozen
class HttpRequest:
    """What a route handler receives. Header names are lower-case; ``body`` is the raw bytes."""

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_lower_keys)
    query: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    #: Path parameters from the registered pattern (``/approvals/{token}`` -> ``token``).
    params: Mapping[str, str] = attrs.field(factory=dict)
    #: What the server gives every route: its audit store (and so its approval requests).
    context: RouteContext | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@attrs.frozen
class HttpResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> HttpResponse:
        return cls(status, json.dumps(data).encode("utf-8"))

    @classmethod
    def text(cls, text: str, status: int = 200) -> HttpResponse:
        return cls(status, text.encode("utf-8"), "text/plain; charset=utf-8")


@attrs.frozen
class RouteContext:
    """The server's side of a route: where answers go."""

    store: AuditStore

    def responder(self, channel: str) -> Responder:
        """A ``Responder`` for ``channel``; a waiter in this process is woken at once.

        A route's request comes from outside, so it answers with callback tokens only
        (``Responder.tokens_only``): a bare request id is refused and audited."""
        from aegis.runtime.approval.channels import Responder
        from aegis.runtime.approval.flow import WAKERS

        return Responder(self.store.approvals, channel, WAKERS.wake, tokens_only=True)


RouteHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]
