"""A quick "certainly valid" test in front of jsonschema, so big policies load fast.

jsonschema stays the source of truth: it produces every error message and decides every case
this module is unsure about. ``compile_recogniser(schema)`` turns a schema built from a small
keyword subset into a function that returns True only when the instance is valid under that
schema, and False when it is invalid *or* when it cannot tell (an unsupported keyword, a
number type jsonschema treats specially …); False only means "ask jsonschema". The property
"recogniser says True ⇒ jsonschema says valid" is tested with generated instances.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Recogniser = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "$schema",
        "$id",
        "$comment",
        "default",
        "examples",
        "format",
        "$defs",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_SUPPORTED = (
    frozenset(
        {
            "type",
            "properties",
            "additionalProperties",
            "required",
            "enum",
            "minLength",
            "minItems",
            "minProperties",
            "items",
            "propertyNames",
            "minimum",
            "maximum",
            "uniqueItems",
            "pattern",
            "$ref",
        }
    )
    | _ANNOTATIONS
)


def _never(instance: Any) -> bool:
    return False


def _always(instance: Any) -> bool:
    return True


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return type(v) is int or type(v) is float


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "integer": _is_int,
    "number": _is_number,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
}


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Recogniser] = {}

    def ref(self, ref: str) -> Recogniser:
        if ref in self.refs:
            return self.refs[ref]
        if not ref.startswith("#/$defs/") or "/" in ref[len("#/$defs/") :]:
            return _never
        target = self.root.get("$defs", {}).get(ref[len("#/$defs/") :])
        if not isinstance(target, Mapping):
            return _never
        slot: list[Recogniser] = [_never]
        self.refs[ref] = lambda v: slot[0](v)  # late-bound, so recursion works
        slot[0] = self.compile(target)
        return self.refs[ref]

    def compile(self, schema: Any) -> Recogniser:
        if schema is True:
            return _always
        if not isinstance(schema, Mapping) or not set(schema) <= _SUPPORTED:
            return _never
        checks: list[Recogniser] = []
        if "$ref" in schema:
            checks.append(self.ref(schema["$ref"]))
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not all(n in _TYPES for n in names):
                return _never
            tests = [_TYPES[n] for n in names]
            checks.append(lambda v: any(t(v) for t in tests))
        if "enum" in schema:
            strings = frozenset(v for v in schema["enum"] if type(v) is str)
            ints = frozenset(v for v in schema["enum"] if type(v) is int)
            checks.append(
                lambda v: (type(v) is str and v in strings) or (type(v) is int and v in ints)
            )
        if "minLength" in schema:
            n = schema["minLength"]
            checks.append(lambda v: type(v) is not str or len(v) >= n)
        if "pattern" in schema:
            search = re.compile(schema["pattern"]).search
            checks.append(lambda v: type(v) is not str or search(v) is not None)
        if "minimum" in schema or "maximum" in schema:
            low, high = schema.get("minimum"), schema.get("maximum")
            if not all(b is None or _is_number(b) for b in (low, high)):
                return _never
            checks.append(
                lambda v: (
                    not _is_number(v) or ((low is None or v >= low) and (high is None or v <= high))
                )
            )
        checks.extend(self._array(schema))
        checks.extend(self._object(schema))
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    def _array(self, schema: Mapping[str, Any]) -> list[Recogniser]:
        checks: list[Recogniser] = []
        if "minItems" in schema:
            n = schema["minItems"]
            checks.append(lambda v: type(v) is not list or len(v) >= n)
        if "items" in schema:
            item = self.compile(schema["items"])
            checks.append(lambda v: type(v) is not list or all(item(x) for x in v))
        if schema.get("uniqueItems") is True:
            checks.append(
                lambda v: (
                    type(v) is not list
                    or (all(type(x) is int or type(x) is str for x in v) and len(set(v)) == len(v))
                )
            )
        return checks

    def _object(self, schema: Mapping[str, Any]) -> list[Recogniser]:
        checks: list[Recogniser] = []
        props = {k: self.compile(s) for k, s in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties", True)
        extra_check = _never if extra is False else self.compile(extra)
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None
        required = tuple(schema.get("required", ()))
        least = schema.get("minProperties", 0)

        def check_object(v: Any) -> bool:
            if type(v) is not dict:
                return True
            if len(v) < least:
                return False
            for key in required:
                if key not in v:
                    return False
            for key, value in v.items():
                if names is not None and not names(key):
                    return False
                test = props.get(key) if type(key) is str else None
                if test is None:
                    test = extra_check
                if not test(value):
                    return False
            return True

        if props or "additionalProperties" in schema or names or required or least:
            checks.append(check_object)
        return checks


def compile_recogniser(schema: Mapping[str, Any]) -> Recogniser:
    """A function that is True only for instances certainly valid under ``schema``."""
    try:
        return _Compiler(schema).compile(schema)
    except Exception:  # anything odd in a plugin's schema: always ask jsonschema
        return _never
