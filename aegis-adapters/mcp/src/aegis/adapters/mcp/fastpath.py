"""``tools/call`` on stdio without the SDK's server session: the client's line, the runtime, the
upstream, the answer.

Measured, the SDK's server machinery (dispatcher, per-request context, middleware, memory
streams) cost more per call than the governance itself. So once the client has finished the
``initialize`` handshake, each line from the client is looked at here first: a ``tools/call``
request (and a ``notifications/cancelled`` for one of those) is taken; everything else goes on to
the SDK's server unchanged, which answers it exactly as before.

A taken call is checked with the SDK's own models for the negotiated protocol version, goes
through ``Proxy.call`` (the same runtime path as the SDK handler: policy, quarantine, approval,
audit) and its answer is shaped by the SDK's own per-version result serialiser. Fail closed:

* params that do not validate: not run, audited as blocked, answered ``INVALID_PARAMS`` (the
  SDK's answer);
* a second request with the id of one still running: not run, audited, answered
  ``INVALID_REQUEST`` (the SDK would silently let the newer one take over the id);
* a cancelled call is cancelled in the runtime (audited as such) and never answered, as the spec
  requires.

The 2026-07-28 protocol (no handshake) is served by the SDK alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import mcp_types as types
from aegis.adapters.mcp import wire
from aegis.adapters.mcp.executor import ProgressCallback
from aegis.adapters.mcp.proxy import Proxy
from aegis.adapters.mcp.replies import to_call_result
from aegis.adapters.mcp.upstream import forwarded
from mcp_types.methods import parse_client_request, serialize_server_result
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from aegis.core.result import Result
from aegis.runtime.recorded import answer_early
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import (
    cancelled_request_id_from_params,
    progress_token_from_params,
)

log = logging.getLogger("aegis.mcp.proxy")
parse = types.jsonrpc_message_adapter.validate_json

_PLAIN_KEYS = frozenset({"name", "arguments", "_meta"})
MALFORMED = "params that do not validate"
DUPLICATE = "duplicate id"
NOT_JSON = "NaN or an infinity in the line, which JSON does not have"


class FastPath:
    def __init__(self, proxy: Proxy, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.writer = writer
        self.version: str | None = None  # negotiated; set when the handshake is done
        self._init_id: Any = None
        self._offered: str | None = None
        self._calls: dict[Any, asyncio.Task[None]] = {}
        self._answered: set[asyncio.Task[None]] = set()  # answered; the outcome is being written

    # -- the handshake, watched (the SDK does it) -------------------------------------------

    def seen_outgoing(self, text: str) -> None:
        """The SDK's answer to ``initialize`` carries the version it agreed to."""
        if self._init_id is None:
            return
        try:
            message = parse(text, by_name=False)
        except ValueError:
            return
        if isinstance(message, types.JSONRPCResponse) and message.id == self._init_id:
            version = message.result.get("protocolVersion")
            self._offered = version if isinstance(version, str) else None

    def _watch(self, message: types.JSONRPCMessage) -> None:
        if isinstance(message, types.JSONRPCRequest) and message.method == "initialize":
            self._init_id, self._offered = message.id, None
        elif (
            isinstance(message, types.JSONRPCNotification)
            and message.method == "notifications/initialized"
            and self._offered is not None
            and self._offered not in MODERN_PROTOCOL_VERSIONS
        ):
            self.version = self._offered

    # -- the client's lines ------------------------------------------------------------------

    def take(self, line: bytes) -> bool:
        """True when the line was handled here; False passes it on to the SDK."""
        if self.version is None:
            with contextlib.suppress(ValueError):  # the SDK answers a parse error as always
                self._watch(parse(line, by_name=False))
            return False
        odd = False
        try:
            message = wire.load(line)
        except wire.NotJSON:
            message, odd = wire.load_loose(line), True
        except ValueError:
            return False
        if type(message) is not dict or message.get("jsonrpc") != "2.0":
            return False
        method = message.get("method")
        if method == "tools/call" and "id" in message:
            rid = message["id"]
            if type(rid) is not str and type(rid) is not int:
                return False  # not a JSON-RPC request id: the SDK says so
            params = message.get("params")
            key = coerce_request_id(rid)
            if key in self._calls:
                self._start(object(), self._refuse(rid, params, types.INVALID_REQUEST, DUPLICATE))
            elif odd:
                self._start(object(), self._refuse(rid, params, types.INVALID_PARAMS, NOT_JSON))
            else:
                self._start(key, self._serve(rid, params))
            return True
        if method == "notifications/cancelled" and "id" not in message:
            params = message.get("params")
            rid = cancelled_request_id_from_params(params if type(params) is dict else None)
            task = self._calls.get(coerce_request_id(rid)) if rid is not None else None
            if task is not None:
                task.cancel()  # the runtime records it; a cancelled request gets no answer
                return True
        return False

    def _start(self, key: Any, work: Any) -> None:
        task = self._calls[key] = asyncio.get_running_loop().create_task(work)
        task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: Any, task: asyncio.Task[None]) -> None:
        self._answered.discard(task)
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("tools/call failed in the proxy", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel the calls still running (each is audited as cancelled) and wait for them; a
        call already answered is only waited for, until its outcome is committed."""
        tasks = list(self._calls.values())
        for task in tasks:
            if task not in self._answered:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one call ----------------------------------------------------------------------------

    async def _serve(self, rid: Any, params: Any) -> None:
        version = self.version or types.LATEST_PROTOCOL_VERSION
        plain = _plain(params)
        if plain is not None:
            name, arguments = plain
        else:  # an unusual shape: the SDK's model for this version decides
            try:
                call: Any = parse_client_request("tools/call", version, params)
            except ValueError:  # pydantic's ValidationError is one
                await self._refuse(rid, params, types.INVALID_PARAMS, MALFORMED)
                return
            name, arguments = call.params.name, call.params.arguments
        answered = False
        seen: list[Any] = []  # the upstream's answers, as it shaped them (upstream.forwarded)
        box = forwarded.set(seen)

        def answer(result: Result) -> None:
            """The runtime's result, sent while its outcome record is being committed."""
            nonlocal answered
            self._answer(rid, version, to_call_result(result), seen)
            answered = True
            task = asyncio.current_task()
            if task is not None:
                self._answered.add(task)

        token = answer_early.set(answer)
        try:
            try:
                result = await self.proxy.call(name, arguments, self._progress(params))
            finally:
                answer_early.reset(token)
                forwarded.reset(box)
            if not answered:  # it did not run (blocked, refused...): answered now
                self._answer(rid, version, result, None)
        except Exception as exc:
            if answered:  # the outcome could not be recorded after the answer went out
                log.exception("tools/call %r: recording its outcome failed", name)
                return
            log.exception("tools/call %r failed in the proxy", name)
            self._send(types.JSONRPCError(jsonrpc="2.0", id=rid, error=_error(0, str(exc))))

    def _answer(
        self, rid: Any, version: str, result: types.CallToolResult, seen: list[Any] | None
    ) -> None:
        """The result as the client's version shapes it; the upstream's own shaping of it when
        it was made for the same version (the same SDK serialiser, already run once)."""
        for item, shaped_for, body in seen or ():
            if item is result and shaped_for == version:
                self._write({"jsonrpc": "2.0", "id": rid, "result": body})
                return
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        body = serialize_server_result("tools/call", version, dumped)
        self._write({"jsonrpc": "2.0", "id": rid, "result": body})

    async def _refuse(self, rid: Any, params: Any, code: int, what: str) -> None:
        name = params.get("name") if type(params) is dict else None
        reason = f"tools/call request {rid!r} refused by the proxy: {what}; not run"
        await self.proxy.record_refusal(name if isinstance(name, str) else "tools/call", reason)
        message = "Invalid request parameters" if code == types.INVALID_PARAMS else reason
        self._send(types.JSONRPCError(jsonrpc="2.0", id=rid, error=_error(code, message)))

    def _progress(self, params: dict[str, Any] | None) -> ProgressCallback | None:
        token = progress_token_from_params(params)
        if token is None:
            return None

        async def forward(progress: float, total: float | None, message: str | None) -> None:
            body = {"progressToken": token, "progress": progress, "total": total}
            body["message"] = message
            clean = {k: v for k, v in body.items() if v is not None}
            note = types.JSONRPCNotification(
                jsonrpc="2.0", method="notifications/progress", params=clean
            )
            self._send(note)

        return forward

    def _send(self, message: types.JSONRPCMessage) -> None:
        if self.writer.is_closing():
            return
        line = message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        self.writer.write(line.encode("utf-8"))

    def _write(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.dump(message))


def _plain(params: Any) -> tuple[str, dict[str, Any] | None] | None:
    """(name, arguments) when the params have the common shape, which the SDK's model accepts
    as it is; None sends anything else to that model."""
    if type(params) is not dict or not params.keys() <= _PLAIN_KEYS:
        return None
    name, arguments, meta = params.get("name"), params.get("arguments"), params.get("_meta")
    if type(name) is not str or (arguments is not None and type(arguments) is not dict):
        return None
    if meta is not None:
        if type(meta) is not dict or meta.keys() != {"progressToken"}:
            return None
        token = meta["progressToken"]
        if type(token) is not str and type(token) is not int:
            return None
    return name, arguments


def _error(code: int, message: str) -> types.ErrorData:
    return types.ErrorData(code=code, message=message, data="")
