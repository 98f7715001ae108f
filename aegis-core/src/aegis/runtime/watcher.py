"""Hot reload: follow a policy file, swap in good versions, keep the old one on bad ones.

A watcher is itself a policy source (it has ``evaluate``), so ``Runtime(policy=watcher)``
always decides with the newest *valid* policy. A new file that does not load — syntax error,
unknown key, bad regex, missing file — never replaces a working policy: the old one stays in
force, ``last_error`` says why, the error is logged and ``on_error`` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.policy import Policy
from aegis.core.stateful import LimitState
from aegis.errors import PolicyError

log = logging.getLogger("aegis.watcher")


class PolicyWatcher:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = 1.0,
        on_reload: Callable[[Policy], object] | None = None,
        on_error: Callable[[str], object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.on_reload = on_reload
        self.on_error = on_error
        self.last_error: str | None = None
        self.reloads = 0
        data = self.path.read_bytes()
        self._policy = Policy.from_yaml(self.path)  # a bad file at start-up is the caller's error
        self._digest = hashlib.sha256(data).hexdigest()
        self._stamp = self._stat()
        self._task: asyncio.Task[None] | None = None

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def fingerprint(self) -> str:
        return self._policy.fingerprint

    @property
    def stateful(self) -> bool:
        return self._policy.stateful

    def evaluate(
        self, action: Action, *, now: dt.datetime | None = None, state: LimitState | None = None
    ) -> PolicyDecision:
        return self._policy.evaluate(action, now=now, state=state)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Look at the file once; reload if its content changed. True if a new policy took over.

        Callbacks run before this returns; an async one is run to completion (on the running
        loop's thread it is scheduled instead; use ``await watcher.acheck()`` there).
        """
        changed, calls = self._look()
        for callback, argument in calls:
            _run_sync(callback, argument)
        return changed

    async def acheck(self) -> bool:
        """``check`` for async code: the file is read off the loop; async callbacks awaited."""
        changed, calls = await asyncio.to_thread(self._look)
        for callback, argument in calls:
            value = callback(argument)
            if inspect.isawaitable(value):
                await value
        return changed

    def _look(self) -> tuple[bool, list[tuple[Callable[[Any], object], Any]]]:
        calls: list[tuple[Callable[[Any], object], Any]] = []
        stamp = self._stat()
        if stamp == self._stamp:
            return False, calls
        self._stamp = stamp
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            self._fail(
                f"{self.path}: cannot read ({exc.strerror or exc}); keeping the previous policy",
                calls,
            )
            return False, calls
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return False, calls
        try:
            policy = Policy.from_yaml_string(data.decode("utf-8"), source=str(self.path))
        except PolicyError as exc:
            first = str(exc.issues[0]) if exc.issues else str(exc)
            more = f" (+{len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
            self._fail(f"{first}{more}; keeping the previous policy", calls)
            return False, calls
        except UnicodeDecodeError as exc:
            self._fail(f"{self.path}: not UTF-8 ({exc.reason}); keeping the previous policy", calls)
            return False, calls
        self._policy = policy
        self._digest = digest
        self.last_error = None
        self.reloads += 1
        log.info("reloaded policy %s (%d rules)", self.path, len(policy.rules))
        if self.on_reload is not None:
            calls.append((self.on_reload, policy))
        return True, calls

    def _fail(self, message: str, calls: list[tuple[Callable[[Any], object], Any]]) -> None:
        self.last_error = message
        log.warning("policy reload failed: %s", message)
        if self.on_error is not None:
            calls.append((self.on_error, message))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.acheck()
            except Exception:  # a callback that raises must not stop the watching
                log.exception("policy watcher callback failed")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"aegis-watch:{self.path}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> PolicyWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _run_sync(callback: Callable[[Any], object], argument: Any) -> None:
    value = callback(argument)
    if not inspect.isawaitable(value):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_await(value))
        return
    task = loop.create_task(_await(value))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def _await(value: Any) -> None:
    await value


_PENDING: set[asyncio.Task[None]] = set()
