"""m1's floor: a relay that does nothing but forward lines between its stdio and one upstream's.

Two extra pipe hops and process wake-ups, no parsing, no governance: what any stdio proxy
written in Python pays before it does anything. bench/mcp_paths.py runs it beside the proxy.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable


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


async def main() -> None:
    loop = asyncio.get_running_loop()
    proc = await asyncio.create_subprocess_exec(
        *sys.argv[1:],
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


if __name__ == "__main__":
    asyncio.run(main())
