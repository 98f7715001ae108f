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
import functools
import logging
from typing import Any

import mcp_types as types
from aegis.adapters.mcp.executor import ProgressCallback
from aegis.adapters.mcp.proxy import Proxy, to_call_result
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
        try:
            message = parse(line, by_name=False)
        except ValueError:
            return False  # the SDK answers a parse error as it always has
        if self.version is None:
            self._watch(message)
            return False
        if isinstance(message, types.JSONRPCRequest) and message.method == "tools/call":
            key = coerce_request_id(message.id)
            if key in self._calls:
                self._start(object(), self._refuse(message, types.INVALID_REQUEST, "duplicate id"))
            else:
                self._start(key, self._serve(message))
            return True
        if isinstance(message, types.JSONRPCNotification) and (
            message.method == "notifications/cancelled"
        ):
            rid = cancelled_request_id_from_params(message.params)
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

    async def _serve(self, request: types.JSONRPCRequest) -> None:
        version = self.version or types.LATEST_PROTOCOL_VERSION
        try:
            call = parse_client_request("tools/call", version, request.params)
        except ValueError:  # pydantic's ValidationError is one
            await self._refuse(request, types.INVALID_PARAMS, "params that do not validate")
            return
        params: Any = call.params
        answered = False

        def answer(result: Result) -> None:
            """The runtime's result, sent while its outcome record is being committed."""
            nonlocal answered
            self._answer(request.id, version, to_call_result(result))
            answered = True
            task = asyncio.current_task()
            if task is not None:
                self._answered.add(task)

        token = answer_early.set(answer)
        try:
            try:
                result = await self.proxy.call(
                    params.name, params.arguments, self._progress(request.params)
                )
            finally:
                answer_early.reset(token)
            if not answered:  # it did not run (blocked, refused...): answered now
                self._answer(request.id, version, result)
        except Exception as exc:
            if answered:  # the outcome could not be recorded after the answer went out
                log.exception("tools/call %r: recording its outcome failed", params.name)
                return
            log.exception("tools/call %r failed in the proxy", params.name)
            self._send(types.JSONRPCError(jsonrpc="2.0", id=request.id, error=_error(0, str(exc))))

    def _answer(self, rid: Any, version: str, result: types.CallToolResult) -> None:
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        body = serialize_server_result("tools/call", version, dumped)
        self._send(types.JSONRPCResponse(jsonrpc="2.0", id=rid, result=body))

    async def _refuse(self, request: types.JSONRPCRequest, code: int, what: str) -> None:
        params = request.params or {}
        name = params.get("name")
        reason = f"tools/call request {request.id!r} refused by the proxy: {what}; not run"
        await self.proxy.record_refusal(name if isinstance(name, str) else "tools/call", reason)
        message = "Invalid request parameters" if code == types.INVALID_PARAMS else reason
        self._send(types.JSONRPCError(jsonrpc="2.0", id=request.id, error=_error(code, message)))

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


def _error(code: int, message: str) -> types.ErrorData:
    return types.ErrorData(code=code, message=message, data="")
