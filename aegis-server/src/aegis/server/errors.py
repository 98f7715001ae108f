"""One error shape for the whole API: ``{"error": "<what>", "detail": "<why>"}``."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

log = logging.getLogger("aegis.server")


class ErrorBody(msgspec.Struct):
    """Every error the API returns (``detail`` is a list only for an invalid policy: 422)."""

    error: str
    detail: str | list[str]


_WHY = {
    400: "invalid body, parameter or filter (the detail names it)",
    401: "no API key, or an unknown one",
    403: "the key lacks the scope, or the record belongs to another key",
    404: "no such request, execution or record",
    409: "the core refused the answer, no outcome is expected, or the policy is not versioned",
    413: "body or batch too large",
    422: "the policy YAML does not load (detail: every problem as line:col: key: message)",
    429: "rate limited (Retry-After)",
    503: "the rate-limit counter cannot be read, or an outcome could not be recorded: "
    "nothing was done, send it again (Retry-After)",
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a handler can return (all share ``ErrorBody``)."""
    return {
        c: ResponseSpec(data_container=ErrorBody, description=_WHY[c], generate_examples=False)
        for c in codes
    }


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def _body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def handle_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return Response(_body(exc.error, exc.detail), status_code=exc.status, headers=exc.headers)


def handle_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra
    if isinstance(extra, list) and extra:
        parts = [
            f"{e.get('key') or 'body'}: {e.get('message')}" for e in extra if isinstance(e, dict)
        ]
        detail = "; ".join(parts) or exc.detail
    else:
        detail = exc.detail
    return Response(_body("invalid request", detail), status_code=400)


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return Response(
        _body(exc.detail or "error", exc.detail), status_code=exc.status_code, headers=exc.headers
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(_body("internal error", type(exc).__name__), status_code=500)
