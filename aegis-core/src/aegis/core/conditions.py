"""The built-in param conditions: ``param_eq/gt/lt/gte/lte/contains/matches``.

Each takes a mapping of param path to operand (``param_gt: {count: 100, amount.value: 5}``);
several paths in one mapping must all hold. A value that cannot be compared honestly — missing,
ambiguous (see ``aegis.core.params``), of the wrong type, a bool where a number is expected, NaN,
or a string longer than ``MAX_MATCH_INPUT`` for a regex — makes the check *unknown* (``None``),
and the engine resolves unknown towards the stricter outcome.

Comparisons are exact and case-sensitive; the policy's ``case_sensitive`` switch is about globs
only. For case-insensitive text checks use ``param_matches`` with ``(?i)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from aegis.core.action import Action
from aegis.core.condition import (
    CompileContext,
    ConditionCheck,
    ConditionCompileError,
    EvalContext,
    Tristate,
)
from aegis.core.params import ParamGetter, compile_path, is_absent

#: Longest string ``param_matches`` will run a regex over; longer input is unknown. Python's
#: ``re`` has no timeout, so this bounds the work a hostile param can cause.
MAX_MATCH_INPUT = 10_000

_NUMBER_TYPES = (int, float, Decimal, Fraction)


def as_number(value: Any) -> int | float | Decimal | Fraction | None:
    """The value if it is a real, non-NaN number (bools are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        return None
    if value != value:  # NaN, of any numeric type
        return None
    return value


def typed_equal(actual: Any, expected: Any) -> Tristate:
    """Equality that refuses to compare across types (``True`` is not ``1``, ``"5"`` is not 5).

    Values of different types (``null`` included, either way round) are *unknown*, not
    unequal: on a block rule ``param_eq: {tags: null}`` must not wave ``tags: -1.5`` through
    to a later auto rule when ``param_eq: {tags: 0}`` would not.
    """
    if is_absent(actual):
        return None
    if expected is None:  # null is a type like any other: a non-null value is a mismatch
        return True if actual is None else None
    if isinstance(expected, bool):
        return actual is expected if isinstance(actual, bool) else None
    if isinstance(expected, _NUMBER_TYPES):
        number = as_number(actual)
        return None if number is None else bool(number == expected)
    if isinstance(expected, str):
        return actual == expected if isinstance(actual, str) else None
    if isinstance(expected, list | tuple):  # element by element, with the same type rules
        if not isinstance(actual, list | tuple):
            return None
        if len(actual) != len(expected):
            return False
        return _every(typed_equal(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return None
        if set(actual) != set(expected):
            return False
        return _every(typed_equal(actual[k], e) for k, e in expected.items())
    return None


def _every(outcomes: Iterable[Tristate]) -> Tristate:
    """Kleene AND: False if any is False, else unknown if any is unknown, else True."""
    result: Tristate = True
    for outcome in outcomes:
        if outcome is False:
            return False
        if outcome is None:
            result = None
    return result


def _all_of(parts: list[tuple[ParamGetter, Callable[[Any], Tristate]]]) -> ConditionCheck:
    """AND over several paths, Kleene-style: any False wins, else any unknown wins."""
    if len(parts) == 1:
        ((get, test),) = parts

        def check_one(action: Action, ctx: EvalContext) -> Tristate:
            return test(get(action.params))

        return check_one

    def check_all(action: Action, ctx: EvalContext) -> Tristate:
        result: Tristate = True
        for get, test in parts:
            outcome = test(get(action.params))
            if outcome is False:
                return False
            if outcome is None:
                result = None
        return result

    return check_all


def _compare_factory(
    op: Callable[[Any, Any], bool], name: str
) -> Callable[[Any, CompileContext], ConditionCheck]:
    def factory(argument: Mapping[str, Any], cc: CompileContext) -> ConditionCheck:
        parts: list[tuple[ParamGetter, Callable[[Any], Tristate]]] = []
        for path, threshold in argument.items():
            if as_number(threshold) is None or (
                isinstance(threshold, float) and math.isnan(threshold)
            ):
                raise ConditionCompileError(f"{path}: {name} needs a number, got {threshold!r}")

            def test(value: Any, _threshold: Any = threshold) -> Tristate:
                number = as_number(value)
                return None if number is None else op(number, _threshold)

            parts.append((compile_path(path), test))
        return _all_of(parts)

    return factory


param_gt = _compare_factory(lambda a, b: a > b, "param_gt")
param_lt = _compare_factory(lambda a, b: a < b, "param_lt")
param_gte = _compare_factory(lambda a, b: a >= b, "param_gte")
param_lte = _compare_factory(lambda a, b: a <= b, "param_lte")


def param_eq(argument: Mapping[str, Any], cc: CompileContext) -> ConditionCheck:
    parts: list[tuple[ParamGetter, Callable[[Any], Tristate]]] = []
    for path, expected in argument.items():
        if isinstance(expected, float) and math.isnan(expected):
            raise ConditionCompileError(f"{path}: NaN never equals anything")

        def test(value: Any, _expected: Any = expected) -> Tristate:
            return typed_equal(value, _expected)

        parts.append((compile_path(path), test))
    return _all_of(parts)


def param_contains(argument: Mapping[str, Any], cc: CompileContext) -> ConditionCheck:
    """Substring of a string param, or member of a list param."""
    parts: list[tuple[ParamGetter, Callable[[Any], Tristate]]] = []
    for path, needle in argument.items():

        def test(value: Any, _needle: Any = needle) -> Tristate:
            if isinstance(value, str):
                return _needle in value if isinstance(_needle, str) else None
            if isinstance(value, list | tuple):
                return any(typed_equal(item, _needle) is True for item in value)
            return None

        parts.append((compile_path(path), test))
    return _all_of(parts)


def param_matches(argument: Mapping[str, Any], cc: CompileContext) -> ConditionCheck:
    """``re.search`` of a string param; the pattern is compiled here, so a bad one fails load."""
    parts: list[tuple[ParamGetter, Callable[[Any], Tristate]]] = []
    for path, pattern in argument.items():
        try:
            search = re.compile(pattern).search
        except re.error as exc:
            where = f" at position {exc.pos}" if exc.pos is not None else ""
            raise ConditionCompileError(
                f"{path}: invalid regular expression {pattern!r}: {exc.msg}{where}"
            ) from None

        def test(value: Any, _search: Callable[[str], Any] = search) -> Tristate:
            if not isinstance(value, str) or len(value) > MAX_MATCH_INPUT:
                return None
            return _search(value) is not None

        parts.append((compile_path(path), test))
    return _all_of(parts)
