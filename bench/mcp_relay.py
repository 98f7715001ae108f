"""m1's floor: a relay that does nothing but forward bytes between its stdio and one upstream's.

Two extra pipe hops and process wake-ups, no parsing, no governance: what any stdio proxy
written in Python pays before it does anything. bench/mcp_paths.py runs it beside the proxy,
in two modes, so the floor splits into what asyncio costs and what the pipes and the scheduler
cost:

- ``--mode asyncio`` (default): the event loop's stream reader and writer, line by line, as the
  proxy reads and writes its pipes;
- ``--mode threads``: one thread per direction, blocking ``os.read`` and ``os.write`` on the raw
  file descriptors, no event loop. Chunks are forwarded as read (a relay need not find line
  ends: the two MCP endpoints frame the messages), so this is as little as Python can do.

    python bench/mcp_relay.py [--mode asyncio|threads] -- UPSTREAM ARGV...
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable

CHUNK = 1024 * 1024


async def pump(
    reader: asyncio.StreamReader,
    write: Callable[[bytes], object],
    drain: Callable[[], Awaitable[None]],
    close: Callable[[], object] = lambda: None,
) -> None:
    while line := await reader.readline():
        write(line)
        await drain()
    close()  # the client's EOF is the upstream's, so the upstream can exit and end the other pump


async def relay_asyncio(argv: list[str]) -> None:
    loop = asyncio.get_running_loop()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,
    )
    stdin = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    out = asyncio.StreamWriter(transport, protocol, None, loop)
    assert proc.stdin is not None and proc.stdout is not None
    await asyncio.gather(
        pump(stdin, proc.stdin.write, proc.stdin.drain, proc.stdin.close),
        pump(proc.stdout, out.write, out.drain),
    )


def copy(src: int, dst: int, close: Callable[[], object] = lambda: None) -> None:
    """Blocking copy until EOF; the GIL is released in both system calls."""
    while chunk := os.read(src, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
    close()  # the client's EOF is the upstream's, so it exits and ends the other copy


def relay_threads(argv: list[str]) -> None:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    up = threading.Thread(
        target=copy, args=(sys.stdin.fileno(), proc.stdin.fileno(), proc.stdin.close), daemon=True
    )
    up.start()
    copy(proc.stdout.fileno(), sys.stdout.fileno())
    proc.wait()


def main() -> None:
    args = sys.argv[1:]
    mode = "asyncio"
    if args[:1] == ["--mode"]:
        mode, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if mode == "threads":
        relay_threads(args)
    elif mode == "asyncio":
        asyncio.run(relay_asyncio(args))
    else:
        raise SystemExit(f"unknown --mode {mode!r} (asyncio or threads)")


if __name__ == "__main__":
    main()
