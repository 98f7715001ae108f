"""Shadow mode: a candidate policy decides every action beside the live one; only the record hears.

``Runtime(policy=live, shadow=candidate)`` evaluates ``candidate`` for every action the runtime
records and writes its answer into the record's ``shadow`` column, hashed with the intent, so it
is evidence like the live decision (``aegis shadow report`` reads it back). The live policy alone
decides. Nothing the shadow does — block everything, raise, hang, return garbage, not be a
policy at all — can run, stop or change an action; a failure of the shadow becomes the text
``shadow error: ...`` in the record and nothing else.

How it is evaluated, so that it costs the hot path next to nothing:

* A ``Policy`` (or a ``PolicyWatcher`` following one) whose conditions are all built in is
  evaluated inline: the same compiled matcher and pure conditions the live policy runs — no I/O,
  no plugin code, a few microseconds.
* Anything else (a policy using a plugin's condition, a custom policy source) runs on this
  shadow's own daemon worker threads, and the action waits for it at most ``timeout`` seconds:
  a slow or hung shadow costs an action that much at worst, then "shadow error: no decision
  within ...". Once every worker is still busy past that time (a hung shadow), or
  ``MAX_PENDING`` evaluations are queued, further actions do not wait at all ("shadow error:
  skipped ..."). The threads are daemons, so a hung shadow never keeps the process from
  exiting either.
* The shadow is evaluated with the pure ``evaluate(action)``: it gets no runtime state, so a
  stateful condition (rate limits, budgets) in a shadow never reads or consumes quota.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.policy import Policy
from aegis.core.result import ResultStatus
from aegis.core.risk import Approval, RiskLevel
from aegis.runtime.watcher import PolicyWatcher

log = logging.getLogger("aegis.shadow")

#: Seconds an action waits for a shadow evaluated off the event loop's thread.
DEFAULT_SHADOW_TIMEOUT = 0.1
#: Off-thread evaluations allowed in flight; past that, actions record "skipped" and go on.
MAX_PENDING = 64
#: Worker threads per shadow (evaluations are CPU work under the GIL; two keep one hung
#: evaluation from stalling every other one).
WORKERS = 2
_MAX_ERROR = 500
_CACHE_MAX = 1024

_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode


class ShadowVerdict:
    """What the shadow decided for one action, or why it could not: stored as canonical JSON.

    Decisions are kept as ready JSON (shared between actions the same rule decided); an error
    keeps its message so the store can redact it before it is written.
    """

    __slots__ = ("error", "text")

    def __init__(self, text: str | None, error: str | None = None) -> None:
        self.text = text
        self.error = error

    @classmethod
    def failed(cls, message: str) -> ShadowVerdict:
        if len(message) > _MAX_ERROR:
            message = message[: _MAX_ERROR - 1] + "…"
        return cls(None, message)

    def stored(self, redact: Callable[[str], str]) -> str:
        """The column's text; ``redact`` cleans an error message (it may quote a param)."""
        if self.text is not None:
            return self.text
        return _dumps({"error": f"shadow error: {redact(self.error or 'unknown')}"})

    def __repr__(self) -> str:
        return f"ShadowVerdict({self.text or 'shadow error: ' + str(self.error)})"


def decision_fields(decision: PolicyDecision) -> dict[str, Any]:
    """The part of a decision the record keeps (and ``aegis shadow report`` compares)."""
    out: dict[str, Any] = {
        "approval": decision.approval.value,
        "risk_level": decision.risk_level.name,
        "matched_rule": decision.matched_rule,
    }
    if decision.unknown_conditions:
        out["unknown"] = list(decision.unknown_conditions)
    if decision.policy_fingerprint:
        out["policy"] = decision.policy_fingerprint
    return out


class ShadowPolicy:
    """A candidate policy evaluated beside the live one; ``verdict`` never raises.

    ``source``: a ``Policy``, anything with ``evaluate(action) -> PolicyDecision`` (a
    ``PolicyWatcher``, a ``PolicyHierarchy``), or the path of a YAML policy. A path that does
    not load, or an object that is not a policy, is not an error here: the runtime must not
    refuse to run because of its shadow, so every record says why the shadow could not decide
    (and a warning is logged once).
    """

    def __init__(self, source: object, *, timeout: float = DEFAULT_SHADOW_TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"shadow_timeout: a positive number of seconds, not {timeout!r}")
        self.timeout = float(timeout)
        self.source, self._broken = _load(source)
        if self._broken is not None:
            log.warning("shadow policy unusable, recorded as a shadow error: %s", self._broken)
        self._cache: dict[tuple[Any, ...], ShadowVerdict] = {}
        self._checked: object = None  # the Policy last checked for inline evaluation
        self._inline: Any = None  # that Policy when it may run inline, else None
        self._pool: _Workers | None = None
        self._lock = threading.Lock()
        self._pending = 0  # submitted, not yet finished
        self._overdue = 0  # still running past the time an action waited for them
        #: A watcher's policy changes on reload: it is re-checked when it does.
        self._follows = isinstance(self.source, PolicyWatcher)
        self._fast()

    # -- evaluation --------------------------------------------------------------------------

    async def verdict(self, action: Action) -> ShadowVerdict:
        """The shadow's decision for ``action`` (an error verdict on any failure)."""
        return self.inline_verdict(action) or await self._offloaded(action)

    def inline_verdict(self, action: Action) -> ShadowVerdict | None:
        """The verdict, when it can be had on this thread without waiting (a built-in-only
        policy, or a shadow that cannot decide at all); None: use ``verdict``."""
        if self._broken is not None:
            return ShadowVerdict.failed(self._broken)
        policy = self._fast() if self._follows else self._inline
        if policy is None:
            return None
        try:
            return self._judge(policy.evaluate(action))
        except Exception as exc:  # built-in code only, but never the action's problem
            return ShadowVerdict.failed(_describe(exc))

    def evaluate_now(self, action: Action) -> ShadowVerdict:
        """The verdict computed on this thread, without a time limit (tests, tools)."""
        if self._broken is not None:
            return ShadowVerdict.failed(self._broken)
        return self._guarded(action)

    def _guarded(self, action: Action) -> ShadowVerdict:
        try:
            decision = self.source.evaluate(action)
        except BaseException as exc:  # SystemExit from a plugin included: it is the shadow's
            return ShadowVerdict.failed(_describe(exc))
        try:
            return self._judge(decision)
        except Exception as exc:
            return ShadowVerdict.failed(_describe(exc))

    def _judge(self, decision: object) -> ShadowVerdict:
        if not isinstance(decision, PolicyDecision):
            return ShadowVerdict.failed(
                f"the shadow policy returned {type(decision).__name__}, not a PolicyDecision"
            )
        approval, risk = decision.approval, decision.risk_level
        if type(approval) is not Approval or type(risk) is not RiskLevel:
            return ShadowVerdict.failed(
                f"the shadow policy returned a malformed decision (approval={approval!r}, "
                f"risk_level={risk!r})"
            )
        key = (
            approval,
            risk,
            decision.matched_rule,
            decision.unknown_conditions,
            decision.policy_fingerprint,
        )
        found = self._cache.get(key)
        if found is None:
            found = ShadowVerdict(_dumps(decision_fields(decision)))
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        return found

    async def _offloaded(self, action: Action) -> ShadowVerdict:
        with self._lock:
            if self._overdue >= WORKERS:
                return ShadowVerdict.failed(
                    f"skipped: every shadow worker is still busy with an evaluation that took "
                    f"longer than {self.timeout:g} s (the shadow policy is slow or hung); "
                    "the action went on"
                )
            if self._pending >= MAX_PENDING:
                return ShadowVerdict.failed(
                    f"skipped: {self._pending} shadow evaluations are waiting already; "
                    "the action went on"
                )
            self._pending += 1
            if self._pool is None:
                self._pool = _Workers(WORKERS)
            pool = self._pool
        fut = pool.submit(self._guarded, action)
        fut.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return fut.result()  # finished just as the wait ran out
            if not fut.cancelled():  # running: it holds a worker until it ends
                with self._lock:
                    self._overdue += 1
                fut.add_done_callback(self._caught_up)
            return ShadowVerdict.failed(
                f"no decision within {self.timeout:g} s (the shadow policy is slow); "
                "the action went on"
            )

    def _release(self, _fut: object) -> None:
        with self._lock:
            self._pending -= 1

    def _caught_up(self, _fut: object) -> None:
        with self._lock:
            self._overdue -= 1

    def _fast(self) -> Any:
        """The Policy to evaluate inline, or None (off-thread evaluation)."""
        source = self.source
        policy = source.policy if self._follows else source
        if policy is self._checked:
            return self._inline
        self._checked = policy
        self._inline = policy if isinstance(policy, Policy) and _builtin_only(policy) else None
        return self._inline

    @property
    def inline(self) -> bool:
        """True when the shadow is evaluated on the caller's thread (built-in conditions only)."""
        return self._broken is None and self._fast() is not None

    @property
    def broken(self) -> str | None:
        """Why this shadow cannot decide anything (a bad path, not a policy), else None."""
        return self._broken

    def close(self) -> None:
        """Let the worker threads end once the evaluations they hold are done."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


async def consult(
    shadow: ShadowPolicy,
    action: Action,
    stop: Callable[[ResultStatus, str], Awaitable[object]],
) -> ShadowVerdict:
    """``shadow.verdict(action)`` for the runtime: a task cancelled while it waits for the
    shadow is recorded (``stop``) as not run before the cancellation goes on, as anywhere
    before execution. (Only an off-thread shadow waits; an inline one never yields.)"""
    try:
        return await shadow.verdict(action)
    except asyncio.CancelledError:
        task = asyncio.ensure_future(
            stop(ResultStatus.BLOCKED, "cancelled while the shadow policy decided; not run")
        )
        try:
            await asyncio.shield(task)
        except Exception:
            log.exception("could not record an action cancelled while its shadow decided")
        raise


def _load(source: object) -> tuple[Any, str | None]:
    if isinstance(source, str | os.PathLike):
        from aegis.errors import PolicyError

        where = f"cannot load shadow policy {os.fspath(source)}"
        try:
            return Policy.from_yaml(source), None
        except PolicyError as exc:
            return None, f"{where}: {(str(exc).splitlines() or ['invalid'])[0]}"
        except Exception as exc:
            return None, f"{where}: {_describe(exc)}"
    if not callable(getattr(source, "evaluate", None)):
        return None, (
            f"the shadow policy is a {type(source).__name__}, not a policy "
            "(it has no evaluate method)"
        )
    return source, None


def _builtin_only(policy: Any) -> bool:
    """True when every condition the policy names is a built-in one (pure, bounded code)."""
    from aegis import plugins
    from aegis.core.policy_compile import BUILTIN_PLUGIN

    registry = plugins.get_registry()
    names: set[str] = set()
    for rule in policy.rules:
        _condition_names(rule.conditions or {}, names)
    for name in names:
        reg = registry.get("conditions", name)
        if reg is None or reg.plugin != BUILTIN_PLUGIN:
            return False
    return True


def _condition_names(mapping: Mapping[str, Any], out: set[str]) -> None:
    for key, value in mapping.items():
        if key in ("all", "any") and isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    _condition_names(item, out)
        elif key == "not" and isinstance(value, Mapping):
            _condition_names(value, out)
        else:
            out.add(str(key))


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "(its message cannot be shown)"
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Workers:
    """A few daemon threads draining one queue (a hung job must never block interpreter exit,
    which the standard ``ThreadPoolExecutor``'s joined threads would)."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"aegis-shadow-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, fn: Callable[[Action], ShadowVerdict], action: Action
    ) -> concurrent.futures.Future[ShadowVerdict]:
        fut: concurrent.futures.Future[ShadowVerdict] = concurrent.futures.Future()
        self._jobs.put((fut, fn, action))
        return fut

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, fn, action = job
            if not fut.set_running_or_notify_cancel():
                continue  # its action stopped waiting before it started
            try:
                verdict = fn(action)
            except BaseException as exc:  # ``_guarded`` catches everything; kept as a backstop
                verdict = ShadowVerdict.failed(_describe(exc))
            fut.set_result(verdict)

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
