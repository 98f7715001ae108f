"""The built-in clock conditions: ``time_after``, ``time_before`` and ``weekdays``.

Times are ``HH:MM`` or ``HH:MM:SS`` (24-hour) in the policy's ``timezone`` (default UTC).
``time_after`` holds from that time (inclusive) to midnight; ``time_before`` from midnight to
that time (exclusive). When one conditions mapping holds both, they form one window: if
``time_after`` is earlier than ``time_before`` the window is the day-time stretch between them;
if it is later (``18:00`` → ``08:00``) the window runs overnight — from the evening through
midnight into the next morning. ``weekdays`` uses ISO numbers (1 = Monday … 7 = Sunday) of the
local date, so Saturday 02:00 in an overnight window counts as Saturday.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from aegis.core.action import Action
from aegis.core.condition import (
    CompileContext,
    ConditionCheck,
    ConditionCompileError,
    EvalContext,
    Tristate,
)

TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
_TIME_RE = re.compile(TIME_PATTERN)


_LOOSE_TIME = re.compile(r"([0-9]+):([0-9]+)(?::([0-9]+))?\Z")


def explain_time(text: object) -> str:
    """What is wrong with a time that is not ``HH:MM[:SS]``, as a user would want it said."""
    base = f"invalid time {text!r}"
    loose = _LOOSE_TIME.match(text) if isinstance(text, str) else None
    if loose is not None:
        hour, minute, second = loose.groups()
        for label, part, top in (
            ("hour", hour, 23),
            ("minute", minute, 59),
            ("second", second, 59),
        ):
            if part is not None and int(part) > top:
                return f"{base}: the {label} is {int(part)}, past {top} (24-hour clock)"
        if any(part is not None and len(part) != 2 for part in (hour, minute, second)):
            return f"{base}: write two digits each, as HH:MM or HH:MM:SS (e.g. 08:30)"
    return f"{base}: expected HH:MM or HH:MM:SS (24-hour, 00:00 to 23:59:59)"


def parse_time(text: object) -> dt.time:
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ConditionCompileError(explain_time(text))
    return dt.time.fromisoformat(text)


def local_now(ctx: EvalContext, tz: dt.tzinfo) -> dt.datetime:
    """The evaluation time in the policy's zone; a naive ``now`` is taken to be in that zone."""
    now = ctx.now
    if now.tzinfo is None:
        return now.replace(tzinfo=tz)
    return now.astimezone(tz)


def time_after(argument: str, cc: CompileContext) -> ConditionCheck:
    start = parse_time(argument)
    tz = cc.timezone

    def check(action: Action, ctx: EvalContext) -> Tristate:
        return local_now(ctx, tz).time() >= start

    return check


def time_before(argument: str, cc: CompileContext) -> ConditionCheck:
    end = parse_time(argument)
    tz = cc.timezone

    def check(action: Action, ctx: EvalContext) -> Tristate:
        return local_now(ctx, tz).time() < end

    return check


def time_window(after: str, before: str, cc: CompileContext) -> ConditionCheck:
    """``time_after`` and ``time_before`` together: a day-time or an overnight window."""
    start, end = parse_time(after), parse_time(before)
    if start == end:
        raise ConditionCompileError(
            f"time_after and time_before are both {after!r}: the window would be empty"
        )
    tz = cc.timezone
    if start < end:

        def daytime(action: Action, ctx: EvalContext) -> Tristate:
            return start <= local_now(ctx, tz).time() < end

        return daytime

    def overnight(action: Action, ctx: EvalContext) -> Tristate:
        now = local_now(ctx, tz).time()
        return now >= start or now < end

    return overnight


def weekdays(argument: Sequence[int], cc: CompileContext) -> ConditionCheck:
    days = frozenset(argument)
    if not days or any(isinstance(d, bool) or d not in range(1, 8) for d in days):
        raise ConditionCompileError(f"weekdays must be ISO day numbers 1-7, got {argument!r}")
    tz = cc.timezone

    def check(action: Action, ctx: EvalContext) -> Tristate:
        return local_now(ctx, tz).isoweekday() in days

    return check
