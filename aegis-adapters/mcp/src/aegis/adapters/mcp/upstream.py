"""One upstream MCP server behind the proxy: its connection lives in a task of its own.

A dead upstream (its process exited, its HTTP endpoint went away) must be an error for its own
tools only, so each connection is opened, served and torn down inside its own task; a failure
there is caught, remembered and reported on every later call instead of reaching the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from aegis.adapters.mcp.config import UpstreamSpec

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

log = logging.getLogger("aegis.mcp.proxy")

Notify = Callable[["Upstream", Any], Awaitable[None]]


class UpstreamDown(Exception):
    """The upstream cannot take calls; the message says why."""


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
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._message)
                )
                result = await session.initialize()
                self.capabilities = result.capabilities
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
            self._ready.set()

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
        params = StdioServerParameters(
            command=spec.command,
            args=list(spec.args),
            env=env or None,
            cwd=spec.cwd,
        )
        return stdio_client(params, errlog=sys.stderr)

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
        return await self._guard(
            session.call_tool(
                name,
                arguments,
                read_timeout_seconds=read_timeout_seconds,
                progress_callback=progress_callback,
            )
        )

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
