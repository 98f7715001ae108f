"""HTTP APIs as governed actions: ``Action("delete", "/users/1")`` becomes ``DELETE /users/1``.

The mapping is deliberately plain so that a policy written against action types and targets
says exactly which requests may be sent:

* ``type`` is the HTTP method: ``get``, ``post``, ``put``, ``patch`` or ``delete`` (any case).
  Any other type fails without a request, so a typo can never turn into some other method.
* ``target`` is a path under ``base_url`` (``/users/1``; a query string may follow). An
  absolute URL (``https://...``, ``//host``) or a ``.``/``..`` segment is refused: the request
  could otherwise leave the API the policy was written for.
* ``params``: the keys ``query`` (a mapping: the query string), ``json`` (the JSON body) and
  ``headers`` (a mapping of extra headers) are taken as such. Every other key goes to the
  query string for ``get``/``delete`` and into the JSON body for ``post``/``put``/``patch``
  (not both ``json`` and loose keys). Extra headers may add to ``default_headers`` but not
  replace them, so an agent cannot swap the credentials it was given.

A 2xx answer is SUCCESS with ``data = {"status_code", "headers", "body"}`` (``body`` parsed
when the answer is JSON). Anything else, redirects included (they are not followed), is FAILED
with the status and an excerpt of the body; a timeout or transport error is FAILED too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.result import Result, ResultStatus
from aegis.hookspecs import Register, hookimpl

__all__ = ["HttpxExecutor"]

METHODS = frozenset({"get", "post", "put", "patch", "delete"})
_BODY_METHODS = frozenset({"post", "put", "patch"})
_RESERVED = ("query", "json", "headers")
EXCERPT = 200


class RequestError(ValueError):
    """An action that cannot be turned into a request; it fails before anything is sent."""


class HttpxExecutor(BaseExecutor):
    """Sends allowed actions to one HTTP API with a shared ``httpx.AsyncClient``.

    ``timeout`` (seconds) bounds each request; ``client`` lets a caller bring its own
    configured client (then ``base_url``/``default_headers`` are applied per request and the
    caller closes it).
    """

    def __init__(
        self,
        base_url: str,
        default_headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        # Targets are joined under the base path: "/api" + "/users" is "/api/users".
        self.base_url = url if url.path.endswith("/") else url.copy_with(path=url.path + "/")
        self.default_headers = dict(default_headers or {})
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None

    async def setup(self) -> None:
        self._live_client()

    async def teardown(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _live_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    def build_request(self, action: Action) -> httpx.Request:
        """The request an action maps to; ``RequestError`` when it maps to none."""
        method = action.type.lower()
        if method not in METHODS:
            raise RequestError(
                f"action type {action.type!r} is not an HTTP method ({', '.join(sorted(METHODS))})"
            )
        url = self.base_url.join(_checked_path(action.target))
        params = dict(action.params)
        query, body, headers = (params.pop(key, None) for key in _RESERVED)
        has_json = "json" in action.params
        for key, value in (("query", query), ("headers", headers)):
            if value is not None and not isinstance(value, Mapping):
                raise RequestError(f"params[{key!r}] must be a mapping, not {type(value).__name__}")
        query = dict(query or {})
        if params and method in _BODY_METHODS:
            if has_json:
                raise RequestError("give the body either as params['json'] or as loose keys")
            body, has_json = params, True
        else:
            query.update(params)
        merged = dict(self.default_headers)
        for name, value in (headers or {}).items():
            if any(name.lower() == k.lower() for k in self.default_headers):
                raise RequestError(f"header {name!r} is set by the executor and cannot be replaced")
            merged[str(name)] = str(value)
        return self._live_client().build_request(
            method.upper(),
            url,
            params=query or None,
            headers=merged,
            json=body if has_json else None,
            timeout=self.timeout,
        )

    async def execute(self, action: Action) -> Result:
        try:
            request = self.build_request(action)
        except RequestError as exc:
            return Result(action, ResultStatus.FAILED, error=str(exc), reason="no request sent")
        try:
            response = await self._live_client().send(request)
        except httpx.TimeoutException as exc:
            return Result(
                action,
                ResultStatus.FAILED,
                error=f"{type(exc).__name__}: no answer within {self.timeout:g} s",
            )
        except httpx.HTTPError as exc:
            return Result(action, ResultStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        data = {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "body": _body(response),
        }
        if response.is_success:
            return Result(action, ResultStatus.SUCCESS, data=data)
        error = f"HTTP {response.status_code} {response.reason_phrase}"
        excerpt = response.text[:EXCERPT]
        if excerpt:
            error = f"{error}: {excerpt}"
        return Result(action, ResultStatus.FAILED, data=data, error=error)


def _checked_path(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//") or "\\" in target:
        raise RequestError(f"target {target!r} must be a path under base_url, not a URL")
    segments = parts.path.split("/")
    if any(unquote(s) in {".", ".."} for s in segments):
        raise RequestError(f"target {target!r} has a '.' or '..' segment")
    return target.lstrip("/")


def _body(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").split(";")[0].strip().endswith("json"):
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


@hookimpl
def aegis_register_executors(register: Register) -> None:
    register("httpx", HttpxExecutor)
