"""Running the proxy on a transport: stdio (one client, the usual case) or streamable HTTP.

On stdio the proxy reads and writes its pipes from the event loop. The SDK's own
``stdio_server`` hands every line read and every write and flush to a worker thread (anyio's
``wrap_file``); profiled, those thread hops were the largest part of the proxy's added
latency per ``tools/call``. ``tools/call`` itself skips the SDK's server session
(``fastpath``); every other message is parsed and answered by the SDK as before. When stdin or
stdout is not a pipe, socket or terminal (a regular file, ``/dev/null``), the SDK's transport
is used for everything.
The audit writes of a stdio proxy are made inline when the writer is idle
(``AuditStore.inline_when``), the other thread hop the profile showed.

A ``tools/call`` is answered while its outcome record is being committed
(``recorded.answer_early``): a clean shutdown (stdin closed, or SIGTERM, handled as a closed
stdin) waits for those commits, and only a crash in between leaves the write-ahead row pending
(marked ``interrupted`` when the store is next opened).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from collections.abc import AsyncIterator
from typing import Any

from aegis.adapters.mcp.fastpath import FastPath
from aegis.adapters.mcp.proxy import Proxy

log = logging.getLogger("aegis.mcp.proxy")

LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; tool results can be large


class _Lines:
    """Lines of the client's stdin, read by the event loop (what the SDK iterates over); the
    fast path takes its lines out first."""

    def __init__(self, reader: asyncio.StreamReader, fast: FastPath | None) -> None:
        self._reader = reader
        self._fast = fast

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = await self._reader.readline()
            if not line:
                raise StopAsyncIteration
            if self._fast is None or not self._fast.take(line):
                return line.decode("utf-8", errors="replace")


class _Out:
    """The client's stdout as the SDK writes it: ``write`` then ``flush``."""

    def __init__(self, writer: asyncio.StreamWriter, fast: FastPath | None) -> None:
        self._writer = writer
        self._fast = fast

    async def write(self, text: str) -> None:
        if self._fast is not None and self._fast.version is None:  # the handshake, watched
            self._fast.seen_outgoing(text)
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


def _streamable(fd: int) -> bool:
    """Whether the event loop can watch ``fd``: a pipe, a socket or a terminal. Not every
    character device: epoll refuses ``/dev/null``, and the loop would wait on it for ever."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


@contextlib.asynccontextmanager
async def _loop_stdio(proxy: Proxy) -> AsyncIterator[tuple[Any, Any, FastPath] | None]:
    """stdin/stdout on the event loop, with fd 0 and 1 diverted (to /dev/null and stderr) while
    serving, so a stray print or a child process cannot write into the MCP channel."""
    if not (_streamable(0) and _streamable(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    transports: list[asyncio.BaseTransport] = []
    handlers = False
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        # SIGTERM (the spec's next step when a server does not exit after stdin closes) ends
        # the input as a closed stdin does, so the calls in flight are closed in the audit
        # (answered ones once their outcome is committed) before the process exits.
        loop.add_signal_handler(signal.SIGTERM, reader.feed_eof)
        handlers = True
        protocol = asyncio.StreamReaderProtocol(reader)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: protocol, os.fdopen(wire_in, "rb", 0)
        )
        transports.append(read_transport)
        write_transport, write_protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            os.fdopen(wire_out, "wb", 0),
        )
        transports.append(write_transport)
        writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
        fast = FastPath(proxy, writer)
        yield _Lines(reader, fast), _Out(writer, fast), fast
    finally:
        if handlers:
            loop.remove_signal_handler(signal.SIGTERM)
        for transport in transports:
            transport.close()
        os.dup2(2, 1)  # stdout stays pointed away from the (now closed) wire


async def serve_stdio(proxy: Proxy) -> None:
    from mcp.server.stdio import stdio_server

    server = proxy.server()
    # One client on stdio: its calls rarely overlap, so an audit write that finds the writer
    # idle is done right here instead of hopping to the writer thread and back (two hops per
    # write, four per call). Concurrent calls still queue and batch.
    proxy.runtime.audit.inline_when = "idle"
    async with _loop_stdio(proxy) as pipes:
        stdin, stdout, fast = pipes if pipes is not None else (None, None, None)
        async with proxy.running():
            try:
                async with stdio_server(stdin, stdout) as (read, write):
                    await server.run(read, write, proxy.initialization_options(server))
            finally:
                if fast is not None:  # before the runtime closes: their audit rows go in
                    await fast.close()


async def serve_http(proxy: Proxy, host: str, port: int, path: str = "/mcp") -> None:
    """Streamable HTTP on ``host:port`` at ``path``; DNS-rebinding protection stays on for a
    loopback host (the SDK's default)."""
    import uvicorn

    server = proxy.server()
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    async with proxy.running():
        await uvicorn.Server(config).serve()
