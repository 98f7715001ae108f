"""Stateful conditions: ``rate_limit``, ``budget``, ``repeat`` and ``sequence``.

They need history, so their check reads a ``LimitState`` from the ``EvalContext``. Without one
(``Policy.evaluate`` as ``aegis simulate`` and the server's ``/evaluate`` call it) a stateful
check answers *unknown*, which the engine resolves the stricter way, like a missing param. The
runtime gives the final evaluation a state read inside the audit write transaction
(``aegis.runtime.limit_state``), so every process and replica on one database counts together;
``aegis test`` gives one in memory, filled from a case's declared ``history``.

What counts (docs/limits.md): a limit *lets an action pass* when it is under its limit and its
answer decides its rule (had the limit been reached, the rule's outcome would differ: a
``param_gt`` beside it that fails means the action is not this rule's to count). Such an
action takes one unit (``budget``: the param's amount) when its write-ahead record is written,
that is when it is allowed to run, and is never refunded.
Blocked, denied and dry-run actions take nothing. ``sequence`` remembers every action that runs
and fits one of its earlier steps, whichever rule decided it.

A condition is stateful when its factory returns a ``StatefulCheck``: plugins can add their
own the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from aegis.core.action import Action
from aegis.core.approvers import parse_duration
from aegis.core.condition import CompileContext, ConditionCompileError, Tristate
from aegis.core.conditions import as_number
from aegis.core.frozen import action_digest
from aegis.core.matcher import Glob
from aegis.core.names import match_key
from aegis.core.params import compile_path, is_absent
from aegis.core.stateful import LimitState, StatefulCheck, Usage

_LONG_KEY = 64  # longer key values are stored as their SHA-256

# -- keys -------------------------------------------------------------------------------------

KeyOf = Callable[[Action], str | None]


def _short(value: str) -> str:
    if len(value) <= _LONG_KEY:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def key_function(spec: str) -> KeyOf:
    """``agent`` / ``session`` / ``target`` / ``type`` / ``param:<path>`` -> the bucket of an
    action. A missing agent or session is one shared bucket (``""``: never laxer than one
    bucket each); a missing or unhashable param is ``None`` (unknown)."""
    if spec == "agent":
        return lambda a: _short(a.agent_id or "")
    if spec == "session":
        return lambda a: _short(a.session_id or "")
    if spec == "target":
        return lambda a: _short(a.target)
    if spec == "type":
        return lambda a: _short(a.type)
    if spec.startswith("param:") and len(spec) > 6:
        get = compile_path(spec[6:])

        def of_param(action: Action) -> str | None:
            value = get(action.params)
            if is_absent(value) or (isinstance(value, float) and not math.isfinite(value)):
                return None
            try:
                text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain)
            except (TypeError, ValueError):
                return None
            return _short(text)

        return of_param
    raise ConditionCompileError(
        f"key: {spec!r} is not a key (use agent, session, target, type or param:<name>)"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | frozenset):
        return list(value)
    raise TypeError(type(value).__name__)


def limit_id(cc: CompileContext, name: str, *parts: object) -> str:
    """Stable across processes and policy edits that keep the rule and what is counted (a new
    ``max`` or ``per`` keeps the history; a new key, param or step list starts afresh)."""
    text = json.dumps([cc.rule, name, *parts], separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _window(argument: Mapping[str, Any], default: str | None = None) -> float:
    value = argument.get("per", default)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConditionCompileError(f"per: {exc}") from None


def _max(argument: Mapping[str, Any]) -> float:
    value = argument.get("max")
    number = as_number(value)
    if number is None or not math.isfinite(float(number)) or number < 0:
        raise ConditionCompileError(f"max: needs a number of at least 0, got {value!r}")
    return float(number)


# -- the four conditions ----------------------------------------------------------------------


class RateLimit(StatefulCheck):
    """Holds (the rule applies) once ``max`` actions passed within ``per``."""

    __slots__ = ("key", "max")

    def __init__(self, lid: str, window: float, maximum: float, key: KeyOf) -> None:
        super().__init__(lid, window)
        self.max = maximum
        self.key = key

    def answer(
        self, action: Action, now: float, state: LimitState
    ) -> tuple[Tristate, Usage | None]:
        key = self.counted_key(action)
        if key is None:
            return None, None
        if state.count(self.limit_id, key, now - self.window) >= self.max:
            return True, None
        return False, (self.limit_id, key, now, 1.0)

    def counted_key(self, action: Action) -> str | None:
        """What the count is kept per (None: unknown, e.g. the keyed param is missing)."""
        return self.key(action)


class Budget(StatefulCheck):
    """Holds for the action whose amount would take the window's sum past ``max``."""

    __slots__ = ("amount", "key", "max")

    def __init__(
        self, lid: str, window: float, maximum: float, key: KeyOf, amount: Callable[[Any], Any]
    ) -> None:
        super().__init__(lid, window)
        self.max = maximum
        self.key = key
        self.amount = amount

    def answer(
        self, action: Action, now: float, state: LimitState
    ) -> tuple[Tristate, Usage | None]:
        key = self.key(action)
        amount = as_number(self.amount(action.params))
        if key is None or amount is None or not math.isfinite(float(amount)) or amount < 0:
            return None, None
        spent = state.total(self.limit_id, key, now - self.window)
        if spent + float(amount) > self.max:
            return True, None
        return False, (self.limit_id, key, now, float(amount))


class Repeat(RateLimit):
    """Holds once the same action (type, target, params) passed ``max`` times within ``per``:
    a rate limit counted per action digest (within the key), i.e. loop detection."""

    __slots__ = ()

    def counted_key(self, action: Action) -> str | None:
        who = self.key(action)
        if who is None:
            return None
        digest = action_digest(action.type, action.target, action.params, None, None)[:32]
        return f"{who[:31]}/{digest}"


Step = tuple[tuple[Glob, Glob | None], ...]


class Sequence(StatefulCheck):
    """Holds for an action fitting the last step when the earlier steps ran, in order, within
    ``per``, under the same key (session by default). A step is ``type`` or ``type:target``
    globs, alternatives separated by ``|``."""

    __slots__ = ("_cs", "key", "steps")

    def __init__(
        self, lid: str, window: float, steps: tuple[Step, ...], key: KeyOf, cs: bool
    ) -> None:
        super().__init__(lid, window)
        self.steps = steps
        self.key = key
        self._cs = cs

    def _fits(self, step: Step, action: Action) -> bool:
        kind = match_key(action.type, self._cs)
        target = match_key(action.target, self._cs)
        return any(g.match(kind) and (t is None or t.match(target)) for g, t in step)

    def answer(
        self, action: Action, now: float, state: LimitState
    ) -> tuple[Tristate, Usage | None]:
        if not self._fits(self.steps[-1], action):
            return False, None
        key = self.key(action)
        if key is None:
            return None, None
        at: float | None = now - self.window
        for k in range(len(self.steps) - 1):
            assert at is not None
            at = state.first_after(f"{self.limit_id}#{k}", key, at)
            if at is None:
                return False, None
        return True, None

    def observe(self, action: Action, now: float, state: LimitState) -> None:
        key = self.key(action)
        if key is None:
            return
        for k, step in enumerate(self.steps[:-1]):
            if self._fits(step, action):
                state.pending.append((f"{self.limit_id}#{k}", key, now, 1.0))


def _step(text: str, cs: bool) -> Step:
    out: list[tuple[Glob, Glob | None]] = []
    for part in text.split("|"):
        kind, sep, target = part.strip().partition(":")
        if not kind or (sep and not target):
            raise ConditionCompileError(f"steps: {text!r}: expected type or type:target globs")
        out.append((Glob(kind, cs), Glob(target, cs) if sep else None))
    return tuple(out)


def _key(argument: Mapping[str, Any], default: str) -> KeyOf:
    return key_function(str(argument.get("key", default)))


def rate_limit(argument: Mapping[str, Any], cc: CompileContext) -> StatefulCheck:
    key = str(argument.get("key", "agent"))
    lid = limit_id(cc, "rate_limit", key)
    return RateLimit(lid, _window(argument), _max(argument), key_function(key))


def budget(argument: Mapping[str, Any], cc: CompileContext) -> StatefulCheck:
    key = str(argument.get("key", "agent"))
    param = str(argument.get("param", ""))
    lid = limit_id(cc, "budget", key, param)
    return Budget(lid, _window(argument), _max(argument), key_function(key), compile_path(param))


def repeat(argument: Mapping[str, Any], cc: CompileContext) -> StatefulCheck:
    key = str(argument.get("key", "agent"))
    lid = limit_id(cc, "repeat", key)
    return Repeat(lid, _window(argument), _max(argument), key_function(key))


def sequence(argument: Any, cc: CompileContext) -> StatefulCheck:
    if not isinstance(argument, Mapping):
        argument = {"steps": argument}
    raw = list(argument.get("steps", ()))
    if len(raw) < 2:
        raise ConditionCompileError("steps: a sequence needs at least two steps")
    steps = tuple(_step(str(step), cc.case_sensitive) for step in raw)
    key = str(argument.get("key", "session"))
    lid = limit_id(cc, "sequence", key, [str(s) for s in raw])
    return Sequence(lid, _window(argument, "1h"), steps, key_function(key), cc.case_sensitive)


# -- schemas ----------------------------------------------------------------------------------

_DURATION: dict[str, Any] = {
    "description": "A window: seconds, or a number with a unit (30s, 10m, 1h, 1d); at most 30d.",
    "type": ["number", "string"],
    "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$",
    "exclusiveMinimum": 0,
}
_KEY: dict[str, Any] = {
    "description": "Whose count: agent, session, target, type, or param:<name>.",
    "type": "string",
    "pattern": r"^(agent|session|target|type|param:.+)$",
}
_MAX: dict[str, Any] = {"type": "number", "minimum": 0}


def _limit_schema(what: str, required: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": what,
        "additionalProperties": False,
        "required": required,
        "properties": {"max": _MAX, "per": _DURATION, "key": _KEY, **extra},
    }


_STEPS: dict[str, Any] = {
    "type": "array",
    "minItems": 2,
    "items": {"type": "string", "minLength": 1},
    "description": "Steps in order, each `type` or `type:target` globs; '|' separates"
    " alternatives (read_file:*.env|read_secret*).",
}

STATEFUL: list[tuple[str, Any, dict[str, Any], str]] = [
    (
        "rate_limit",
        rate_limit,
        _limit_schema(
            "Holds once `max` actions this rule could have decided passed within `per`, per"
            " `key` (default agent): the next one gets the rule's decision.",
            ["max", "per"],
        ),
        "the rule's actions passed `max` times within `per`",
    ),
    (
        "budget",
        budget,
        _limit_schema(
            "Holds for the action whose `param` would take the window's sum past `max`"
            " (spending stops before the budget is exceeded). A missing, negative or"
            " non-numeric amount is unknown.",
            ["param", "max", "per"],
            param={"type": "string", "minLength": 1},
        ),
        "a param's sum within `per` would pass `max`",
    ),
    (
        "repeat",
        repeat,
        _limit_schema(
            "Holds once the same action (type, target and params) passed `max` times within"
            " `per`, per `key` (default agent): loop detection.",
            ["max", "per"],
        ),
        "the same action passed `max` times within `per`",
    ),
    (
        "sequence",
        sequence,
        {
            "description": "A flow: holds for an action fitting the last step when actions"
            " fitting the earlier steps ran, in order, within `per` (default 1h) under the same"
            " `key` (default session). A list is shorthand for {steps: [...]}.",
            # Keywords apply by type: the array form is checked as steps, the object form by
            # its properties (a oneOf would report the wrong branch for a one-step list).
            **{k: v for k, v in _STEPS.items() if k != "description"},
            "type": ["array", "object"],
            "additionalProperties": False,
            "required": ["steps"],
            "properties": {"steps": _STEPS, "per": _DURATION, "key": _KEY},
        },
        "earlier steps ran before this one within a window",
    ),
]
