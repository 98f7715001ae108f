"""One upstream MCP server behind the proxy: its connection lives in a task of its own.

A dead upstream (its process exited, its HTTP endpoint went away) must be an error for its own
tools only, so each connection is opened, served and torn down inside its own task; a failure
there is caught, remembered and reported on every later call instead of reaching the proxy.

On stdio, ``tools/call`` skips the SDK's client session: the request goes onto the upstream's
stdin with an id of our own (``aegis-N``, never an id the session uses), and the pipe's reader
(``stdio_pipe``) hands the answer with that id (and progress for it) to the waiting call
before the session would see it. Everything else (initialize, listings, resources, prompts,
notifications) still goes through the session. The answer is checked with the SDK's own
per-version result model, and against the tool's output schema as the session would, so a
garbled answer is a failed call with the reason, never a result passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, cast

import mcp_types as types
from aegis.adapters.mcp import wire
from aegis.adapters.mcp.config import UpstreamSpec
from aegis.adapters.mcp.stdio_pipe import StdioPipe
from mcp_types.methods import MONOLITH_RESULTS, serialize_server_result
from pydantic import TypeAdapter, ValidationError

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

log = logging.getLogger("aegis.mcp.proxy")

Notify = Callable[["Upstream", Any], Awaitable[None]]
Progress = Callable[[float, float | None, str | None], Awaitable[None]]
Answer = types.JSONRPCResponse | types.JSONRPCError
ID_PREFIX = "aegis-"
_ANSWER_KEYS = frozenset({"jsonrpc", "id", "result", "error"})

#: Set by the stdio fast path around a call: each direct answer is appended as
#: ``(CallToolResult, protocol version, the SDK's dump of it for that version)``, so a client on
#: the same version is sent that dump instead of having the result dumped and checked again.
forwarded: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "aegis_mcp_forwarded", default=None
)


@functools.cache
def _result_model() -> TypeAdapter[Any]:
    """The SDK's version-free model of a ``tools/call`` result (what parse_server_result uses)."""
    return TypeAdapter(cast(Any, MONOLITH_RESULTS["tools/call"]))


class UpstreamDown(Exception):
    """The upstream cannot take calls; the message says why."""


class UpstreamProtocolError(Exception):
    """The upstream answered with something that is not a valid answer; the message says how."""


class Upstream:
    def __init__(self, spec: UpstreamSpec, *, on_notification: Notify | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.session: ClientSession | None = None
        self.error: str | None = None
        self.capabilities: types.ServerCapabilities | None = None
        self._on_notification = on_notification
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.protocol_version = types.LATEST_PROTOCOL_VERSION
        self._pipe: StdioPipe | None = None  # stdio (POSIX): direct tools/call
        self._pending: dict[str, asyncio.Future[Answer | dict[str, Any]]] = {}
        self._progress: dict[str, Progress] = {}
        self._ids = itertools.count(1)

    @property
    def alive(self) -> bool:
        return self.session is not None and self.error is None

    async def start(self, timeout: float) -> None:
        """Connect and initialize; afterwards ``alive`` or ``error`` says how it went."""
        self._task = asyncio.create_task(self._run(), name=f"aegis-mcp-upstream-{self.name}")
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            self.error = f"upstream {self.name!r} did not initialize within {timeout:g} s"
            await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(task)
            except (TimeoutError, Exception):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await stack.enter_async_context(self._transport())
                if isinstance(transport, StdioPipe):
                    self._pipe = transport
                    read, write = transport.read, transport.write
                else:
                    read, write = transport
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._message)
                )
                result = await session.initialize()
                self.capabilities = result.capabilities
                self.protocol_version = result.protocol_version
                self.session = session
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = self.error or f"upstream {self.name!r} failed: {_describe(exc)}"
                log.warning("%s", self.error)
            if isinstance(exc, asyncio.CancelledError) and self._stop.is_set():
                raise
        finally:
            self.session = None
            self.error = self.error or f"upstream {self.name!r} is closed"
            self._fail_pending()
            self._ready.set()

    def _eof(self) -> None:
        """The upstream's stdout ended: it is gone, for every call still waiting too."""
        self.error = self.error or f"upstream {self.name!r} is gone (connection closed)"
        self._fail_pending()

    async def _take(self, item: Any) -> bool:
        """Handle what belongs to our own calls; False passes the item on to the session.

        ``item``: a line's plain JSON object (``stdio_pipe``), taken when it is exactly an
        answer to one of our ids; else the SDK's parse of the line (or the parse error)."""
        if type(item) is dict:
            rid = item.get("id")
            if (
                type(rid) is not str
                or not rid.startswith(ID_PREFIX)
                or item.get("jsonrpc") != "2.0"
                or not item.keys() <= _ANSWER_KEYS
                or ("result" in item) == ("error" in item)
                or type(item.get("result", item.get("error"))) is not dict
            ):
                return False  # not exactly an answer of ours: the SDK's parse looks at it
            self._resolve(rid, item)
            return True
        if isinstance(item, Exception):
            if self._pending:  # it may have been the answer to a waiting call; which one
                first = (str(item) or type(item).__name__).splitlines()[0][:200]  # is unknown,
                self._fail_pending(  # so every waiting call fails rather than hang
                    UpstreamProtocolError(
                        f"upstream {self.name!r} sent a message that is not JSON-RPC ({first})"
                    )
                )
            return False
        message = item.message
        if isinstance(message, Answer) and str(message.id).startswith(ID_PREFIX):
            self._resolve(str(message.id), message)
            return True
        if isinstance(message, types.JSONRPCNotification) and (
            message.method == "notifications/progress"
        ):
            params = message.params or {}
            progress = self._progress.get(str(params.get("progressToken")))
            if progress is not None:
                with contextlib.suppress(Exception):
                    await progress(params["progress"], params.get("total"), params.get("message"))
                return True
        return False

    def _resolve(self, rid: str, answer: Answer | dict[str, Any]) -> None:
        future = self._pending.pop(rid, None)
        if future is None:  # late (after a cancel) or never asked for: dropped
            log.warning("upstream %r: answer to unknown id %r dropped", self.name, rid)
        elif not future.done():
            future.set_result(answer)

    def _fail_pending(self, error: Exception | None = None) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    error or UpstreamDown(self.error or f"upstream {self.name!r} is gone")
                )

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        spec = self.spec
        if spec.url is not None:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            client = create_mcp_http_client(headers=dict(spec.headers or {}))
            return streamable_http_client(spec.url, http_client=client)
        assert spec.command is not None
        env = dict(os.environ) if spec.inherit_env else {}
        env.update(spec.env or {})
        if sys.platform == "win32":  # the SDK's transport knows Windows; no direct calls there
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=env or None, cwd=spec.cwd
            )
            return stdio_client(params, errlog=sys.stderr)
        argv = [spec.command, *spec.args]
        return StdioPipe(argv, env or None, spec.cwd, take=self._take, on_eof=self._eof)

    async def _message(self, message: Any) -> None:
        if isinstance(message, Exception):
            log.warning("upstream %r: transport error: %s", self.name, message)
            return
        if self._on_notification is not None:
            await self._on_notification(self, message)

    # -- calls -------------------------------------------------------------------------------

    def _live(self) -> ClientSession:
        session = self.session
        if session is None or self.error is not None:
            raise UpstreamDown(self.error or f"upstream {self.name!r} is not connected")
        return session

    async def list_tools(self) -> list[types.Tool]:
        return await self._paged("tools")

    async def list_resources(self) -> list[types.Resource]:
        return await self._paged("resources")

    async def list_prompts(self) -> list[types.Prompt]:
        return await self._paged("prompts")

    async def _paged(self, kind: str) -> list[Any]:
        session = self._live()
        method = getattr(session, f"list_{kind}")
        found: list[Any] = []
        cursor: str | None = None
        for _ in range(1000):  # a server that pages forever is not allowed to hang the proxy
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await self._guard(method(params=params))
            found.extend(getattr(page, kind))
            cursor = page.next_cursor
            if not cursor:
                break
        return found

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        read_timeout_seconds: float | None = None,
        progress_callback: Any = None,
    ) -> Any:
        session = self._live()
        if self._pipe is not None:
            async with asyncio.timeout(read_timeout_seconds):
                return await self._call_direct(
                    self._pipe, session, name, arguments, progress_callback
                )
        return await self._guard(
            session.call_tool(
                name,
                arguments,
                read_timeout_seconds=read_timeout_seconds,
                progress_callback=progress_callback,
            )
        )

    async def _call_direct(
        self,
        pipe: StdioPipe,
        session: ClientSession,
        name: str,
        arguments: dict[str, Any] | None,
        progress: Progress | None,
    ) -> types.CallToolResult:
        rid = f"{ID_PREFIX}{next(self._ids)}"
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        if progress is not None:
            params["_meta"] = {"progressToken": rid}
            self._progress[rid] = progress
        future = self._pending[rid] = asyncio.get_running_loop().create_future()
        request = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
        try:
            pipe.send_line(wire.dump(request))
            answer = await future
        except asyncio.CancelledError:
            with contextlib.suppress(ConnectionError):  # the spec's way to say "stop"
                pipe.send(
                    types.JSONRPCNotification(
                        jsonrpc="2.0",
                        method="notifications/cancelled",
                        params={"requestId": rid, "reason": "cancelled by the proxy's client"},
                    )
                )
            raise
        except ConnectionError:
            raise UpstreamDown(self.error or f"upstream {self.name!r} is gone") from None
        finally:
            self._pending.pop(rid, None)
            self._progress.pop(rid, None)
        if isinstance(answer, types.JSONRPCError):
            raise MCPError.from_error_data(answer.error)
        if type(answer) is dict and "error" in answer:
            raise MCPError.from_error_data(self._error(answer["error"]))
        data = answer["result"] if type(answer) is dict else answer.result
        version = self.protocol_version
        try:  # the SDK's per-version check and shaping, then its model (parse_server_result)
            shaped = serialize_server_result("tools/call", version, data)
            result = _result_model().validate_python(shaped, by_name=False)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "result"
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered tools/call with an invalid result "
                f"({exc.error_count()} error(s); {where}: {first['msg']})"
            ) from None
        if not isinstance(result, types.CallToolResult):
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered tools/call with a {type(result).__name__}"
            )
        if not result.is_error:
            await session.validate_tool_result(name, result)
        seen = forwarded.get()
        if seen is not None:
            seen.append((result, version, shaped))
        return result

    def _error(self, error: dict[str, Any]) -> types.ErrorData:
        try:
            return types.ErrorData.model_validate(error, by_name=False)
        except ValidationError:
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered tools/call with an invalid error"
            ) from None

    async def read_resource(self, uri: str) -> Any:
        return await self._guard(self._live().read_resource(uri))

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> Any:
        return await self._guard(self._live().get_prompt(name, arguments))

    async def _guard(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except MCPError as exc:
            if "connection closed" in str(exc).lower():
                self.error = f"upstream {self.name!r} is gone (connection closed)"
                raise UpstreamDown(self.error) from None
            raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
