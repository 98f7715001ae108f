"""An upstream MCP server's process and pipes, shared by the SDK's client session and the
proxy's direct ``tools/call``.

The SDK's ``stdio_client`` moves every message through anyio memory streams and tasks of its
own; profiled behind the proxy, those hops cost more per call than parsing the messages. Here
one reader task reads the upstream's stdout line by line with the event loop, parses each line
with the SDK's own model (``jsonrpc_message_adapter``) and offers it to ``take`` first (the
answers to direct calls); what ``take`` leaves goes to the session's stream as before. Direct
calls write their line to stdin themselves; the session's writes go through a writer task.

Shutdown follows the spec's order: close stdin, wait, then SIGTERM and SIGKILL to the server's
process group (it runs in a session of its own, so its children go too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
from aegis.adapters.mcp import wire

from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

log = logging.getLogger("aegis.mcp.proxy")

LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; tool results can be large
GRACE = 2.0  # seconds for the server to exit by itself once its stdin is closed, then per signal


def _plain(line: bytes) -> Any:
    try:
        return wire.load(line)
    except ValueError:  # not JSON (or NaN): the SDK's parse reports it
        return None


class StdioPipe:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None,
        cwd: str | None,
        take: Callable[[Any], Awaitable[bool]],
        on_eof: Callable[[], None],
    ) -> None:
        self._argv = argv
        self._env = env
        self._cwd = cwd
        self._take = take
        self._on_eof = on_eof
        self.process: asyncio.subprocess.Process | None = None
        self._to_session, self.read = anyio.create_memory_object_stream[Any](0)
        self.write, self._from_session = anyio.create_memory_object_stream[SessionMessage](0)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> StdioPipe:
        self.process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=sys.stderr,
            env=get_default_environment() | (self._env or {}),
            cwd=self._cwd,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._reader()), loop.create_task(self._writer())]
        return self

    def send(self, message: types.JSONRPCMessage) -> None:
        """Write one message to the server's stdin now (the direct path)."""
        self.send_line(message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")

    def send_line(self, line: bytes) -> None:
        stdin = self.process.stdin if self.process is not None else None
        if stdin is None or stdin.is_closing():
            raise ConnectionError("the upstream's stdin is closed")
        stdin.write(line)

    async def _reader(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        try:
            async with self._to_session:
                while line := await stdout.readline():
                    plain = _plain(line) if line[:1] == b"{" else None
                    if type(plain) is dict and await self._take(plain):
                        continue  # an answer to a direct call, read without the SDK's models
                    item: Any
                    try:
                        item = SessionMessage(
                            types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        )
                    except ValueError as exc:
                        log.warning("upstream sent a line that is not JSON-RPC: %.200r", line)
                        item = exc
                    if not await self._take(item):
                        await self._to_session.send(item)
        except (ValueError, ConnectionError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # a line over the limit, or the session gone: the connection ends here
        finally:
            self._on_eof()

    async def _writer(self) -> None:
        with contextlib.suppress(Exception):
            async with self._from_session:
                async for item in self._from_session:
                    self.send(item.message)
                    assert self.process is not None and self.process.stdin is not None
                    await self.process.stdin.drain()

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                process.stdin.close()
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, sig)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), GRACE)
                    break
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
