"""The built-in conditions (ten pure, four stateful: ``aegis.core.limits``), registered through
the public hook like any plugin's."""

from __future__ import annotations

from typing import Any

from aegis.core import conditions, conditions_time, limits
from aegis.hookspecs import Register, hookimpl

_JSON_VALUE: dict[str, Any] = {"type": ["string", "number", "boolean", "null", "array", "object"]}


def _param_map(value_schema: dict[str, Any], what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": what
        + " Keys are param paths (dotted for nested params: amount.value); several keys must"
        " all hold. A missing or mistyped param is unknown, which never loosens a decision.",
        "minProperties": 1,
        "propertyNames": {"type": "string", "minLength": 1},
        "additionalProperties": value_schema,
    }


_TIME: dict[str, Any] = {"type": "string", "pattern": conditions_time.TIME_PATTERN}

BUILTINS: list[tuple[str, Any, dict[str, Any], str]] = [
    (
        "time_after",
        conditions_time.time_after,
        {**_TIME, "description": "Holds from this local time (HH:MM[:SS]) until midnight."},
        "local time is at or after HH:MM",
    ),
    (
        "time_before",
        conditions_time.time_before,
        {
            **_TIME,
            "description": "Holds from midnight until this local time (exclusive)."
            " With time_after in the same mapping, the two form one window (overnight when"
            " time_after is later); equal times would be an empty window and are rejected"
            " when the policy is loaded (a check JSON Schema cannot express).",
        },
        "local time is before HH:MM",
    ),
    (
        "weekdays",
        conditions_time.weekdays,
        {
            "type": "array",
            "description": "ISO weekday numbers on which this holds (1 = Monday ... 7 = Sunday).",
            "items": {"type": "integer", "minimum": 1, "maximum": 7},
            "minItems": 1,
            "uniqueItems": True,
        },
        "local weekday is one of the listed ISO days",
    ),
    (
        "param_eq",
        conditions.param_eq,
        _param_map(
            _JSON_VALUE,
            "Param equals the value. Types must agree (1 is not true, '5' not 5, null only"
            " null): a value of another type is unknown, which never loosens a decision.",
        ),
        "param equals a value",
    ),
    (
        "param_gt",
        conditions.param_gt,
        _param_map({"type": "number"}, "Param > number."),
        "param is greater than a number",
    ),
    (
        "param_lt",
        conditions.param_lt,
        _param_map({"type": "number"}, "Param < number."),
        "param is less than a number",
    ),
    (
        "param_gte",
        conditions.param_gte,
        _param_map({"type": "number"}, "Param >= number."),
        "param is at least a number",
    ),
    (
        "param_lte",
        conditions.param_lte,
        _param_map({"type": "number"}, "Param <= number."),
        "param is at most a number",
    ),
    (
        "param_contains",
        conditions.param_contains,
        _param_map(
            _JSON_VALUE, "String param contains the substring, or list param contains the item."
        ),
        "string param contains a substring, or list param an item",
    ),
    (
        "param_matches",
        conditions.param_matches,
        _param_map(
            {"type": "string", "format": "regex"},
            "String param matches the regular expression (Python re.search; longer"
            f" than {conditions.MAX_MATCH_INPUT} characters is unknown).",
        ),
        "string param matches a regular expression",
    ),
]


@hookimpl
def aegis_register_conditions(register: Register) -> None:
    for name, factory, schema, description in [*BUILTINS, *limits.STATEFUL]:
        register(name, factory, schema=schema, description=description)
