"""``aegis hook daemon``: keeps the policy, the audit store and the runtimes open for hooks.

Each hook call is then a stdlib-only client (``aegis_hook``) talking to this process over a Unix
socket instead of a Python start-up that imports SQLAlchemy, the policy loader and the CLI.
The socket lives in a directory only this user can enter (``$XDG_RUNTIME_DIR/aegis-hooks`` or
``/tmp/aegis-hooks-UID``, 0700), is created 0600, and is named by a digest of the
configuration, so one daemon serves one configuration. A lock file next to it makes a second
daemon for the same configuration exit at once, and lets a new one remove a dead one's socket.

A request is one frame of strings (``aegis_hook.frame``: the protocol, the agent, the client's
configuration, the digest of the policy file, the payload); the answer is one frame with the
digest and configuration it was decided under, the exit code, stdout and stderr the hook must
give. A request configured differently is refused before anything is decided (``refused``) so
the client decides in-process; a changed policy file is loaded again when the client's digest
says so. Nothing is set up per call: the store, the policy and the runtimes stay open, and the
audit writes run on this loop when the writer is idle (no thread hop). Records whose report is
overdue are closed every few seconds (see ``run.reap``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aegis_hook
from aegis.adapters.hooks.handle import HookOptions, Hooks

log = logging.getLogger("aegis.hooks.daemon")
T = TypeVar("T")

REQUEST_LIMIT = 64 * 1024 * 1024  # a Write of a large file arrives whole
REAP_EVERY = 5.0


class Daemon:
    def __init__(self, options: HookOptions, path: Path, *, idle: float = 3600.0) -> None:
        self.options = options
        self.config = options.as_json()
        self.key = aegis_hook.canonical(self.config)
        self.path = path
        self.idle = idle
        self.hooks: Hooks | None = None
        self._last = time.monotonic()
        self._busy = 0
        self._calls: set[asyncio.Task[Any]] = set()

    async def serve(self) -> int:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not aegis_hook.private(str(directory), aegis_hook.S_IFDIR):
            log.error("%s is not a private directory of this user; not serving", directory)
            return 1
        lock = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for our lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("a daemon for this configuration is already running")
            lock.close()
            return 0
        inode: int | None = None
        try:
            self.hooks = Hooks(self.options, reap_each_call=False)
            self.hooks.audit.inline_when = "idle"  # one caller's write at a time, on this loop
            await self.hooks.audit.open()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # we hold the lock: whoever made it is gone
            old = os.umask(0o177)
            try:
                server = await asyncio.start_unix_server(
                    self._connection, path=str(self.path), limit=REQUEST_LIMIT
                )
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            inode = os.stat(self.path).st_ino
            log.info("serving hooks on %s", self.path)
            async with server:
                await self._until_stopped()
                server.close()  # no new calls
                await self._cancel_calls()
        finally:
            with contextlib.suppress(OSError):
                if inode is not None and os.stat(self.path).st_ino == inode:
                    self.path.unlink()
            if self.hooks is not None:
                await self.hooks.close()
            lock.close()
        return 0

    async def _until_stopped(self) -> None:
        """Idle long enough, or SIGTERM / SIGINT (a logout, a restart, Ctrl-C)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        idle = asyncio.ensure_future(self._until_idle())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({idle, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (idle, stopping):
                task.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if stop.is_set():
            log.info("stopping: %d call(s) in progress are denied", len(self._calls))

    async def _cancel_calls(self) -> None:
        """Cancel the calls still in progress (waiting on a human): the runtime records each as
        denied, "cancelled while awaiting approval", and its client answers deny (the
        connection closes unanswered). Killed outright, the daemon would leave no record."""
        calls = list(self._calls)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    async def _until_idle(self) -> None:
        from aegis.adapters.hooks.run import reap

        while True:
            await asyncio.sleep(REAP_EVERY)
            assert self.hooks is not None
            for agent in list(self.hooks._runtimes):
                try:
                    await reap(self.hooks.runtime(agent))
                except Exception:
                    log.exception("could not close unreported hook records")
            if not self._busy and time.monotonic() - self._last > self.idle:
                log.info("idle for %g s; exiting", self.idle)
                return

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._busy += 1
        task = asyncio.current_task()
        if task is not None:
            self._calls.add(task)
        try:
            if not _same_user(writer):  # the 0600 socket should make this impossible: check anyway
                log.warning("refused a connection from another user")
                return
            answer = await self._answer(reader)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        except Exception:
            log.exception("hook connection failed")
        finally:
            if task is not None:
                self._calls.discard(task)
            self._busy -= 1
            self._last = time.monotonic()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        def refuse(why: str) -> bytes:
            return aegis_hook.frame(["refused", why])

        try:
            head = await reader.readline()
            if head.startswith(b"{"):  # an older client: refused in its protocol, so it decides
                return b'{"ok": false, "why": "this daemon speaks another protocol"}\n'
            size = aegis_hook.frame_length(head.rstrip(b"\n"), REQUEST_LIMIT)
            fields = aegis_hook.unframe(await reader.readexactly(size))
        except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
            return refuse(f"unreadable request: {exc}")
        if len(fields) != 5 or fields[0] != aegis_hook.PROTOCOL:
            return refuse("unknown request version")
        _, agent, key, digest, payload = fields
        if key != self.key:
            return refuse("this daemon is configured differently")
        hooks = self.hooks
        assert hooks is not None
        try:
            current = hooks.reload_if(digest)
        except Exception as exc:
            return refuse(f"the policy file could not be loaded again: {exc}")
        if not current:
            return refuse("the policy file differs from the caller's")
        work = hooks.handle(agent, payload)
        # Only a call that may wait on a human outlives a client that hung up; the others
        # answer at once and need no watch on the socket (two futures fewer per call).
        reply = await _while_connected(reader, work) if self.options.wait else await work
        if reply is None:
            return None  # nobody to answer
        return aegis_hook.frame(
            ["ok", hooks.digest, self.key, str(reply.code), reply.stdout, reply.stderr]
        )


async def _while_connected(reader: asyncio.StreamReader, work: Awaitable[T]) -> T | None:
    """``work``, or None when the client hung up first (``work`` is then cancelled).

    A client that is gone (the agent killed its hook: its own timeout, an interrupt) will act
    on no answer: a wait on a human it started is cancelled (the request is closed as such and
    the call recorded as not approved) rather than left for someone to approve a call that will
    never run. The client sends nothing after its request, so the only thing to read is EOF."""
    task = asyncio.ensure_future(work)
    hung_up = asyncio.ensure_future(reader.read(1))
    try:
        done, _ = await asyncio.wait({task, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done and hung_up.result() == b"":
            log.info("the client hung up before its answer; the call is abandoned")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # the pipeline records the call as cancelled
            return None
        return await task
    finally:
        hung_up.cancel()


def _same_user(writer: asyncio.StreamWriter) -> bool:
    import socket
    import struct

    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return False
    return bool(struct.unpack("3i", creds)[1] == os.getuid())


def main(argv: list[str] | None = None) -> int:
    """``python -m aegis.adapters.hooks.daemon``: how the client starts one in the background."""
    parser = argparse.ArgumentParser(prog="aegis-hook-daemon")
    parser.add_argument("--options-json", required=True)
    parser.add_argument("--socket")
    parser.add_argument("--idle", type=float, default=3600.0)
    args = parser.parse_args(argv)
    config = json.loads(args.options_json)
    options = HookOptions.from_json(config)
    path = Path(args.socket or aegis_hook.socket_path(options.as_json()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(Daemon(options, path, idle=args.idle).serve())


if __name__ == "__main__":
    sys.exit(main())
