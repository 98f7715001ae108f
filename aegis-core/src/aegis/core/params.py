"""Finding a value in an action's params by dotted path (``amount.value``, ``items.0.sku``).

A path is resolved two ways: as one literal key (``params["amount.value"]``) and as a walk
through nested mappings (``params["amount"]["value"]``; a segment of ASCII digits without a
leading zero indexes a list — ``items.0``, never ``items.01`` or an Arabic-Indic zero).
If only one way finds a value, that is the value. If both find values and they differ, the path is
*ambiguous*: an agent could otherwise choose which of two values a condition sees, so the result
is treated like a missing value — unknown, which never makes a decision laxer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final


class _Absent:
    """Marker for "no usable value"; distinct from a param that is present and ``None``."""

    __slots__ = ("_label",)

    def __init__(self, label: str) -> None:
        self._label = label

    def __repr__(self) -> str:
        return self._label


MISSING: Final = _Absent("MISSING")
AMBIGUOUS: Final = _Absent("AMBIGUOUS")

ParamGetter = Callable[[Mapping[str, Any]], Any]


def _is_index(part: str) -> bool:
    """ASCII decimal digits without a leading zero ("0", "12"; not "01" nor non-ASCII digits)."""
    return part.isascii() and part.isdigit() and (part == "0" or part[0] != "0")


def _walk(params: Mapping[str, Any], parts: Sequence[str]) -> Any:
    current: Any = params
    for part in parts:
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list | tuple) and _is_index(part):
            index = int(part)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def compile_path(path: str) -> ParamGetter:
    """A getter for ``path``; it returns the value, ``MISSING`` or ``AMBIGUOUS``."""
    if "." not in path:

        def get_plain(params: Mapping[str, Any]) -> Any:
            return params.get(path, MISSING)

        return get_plain

    parts = tuple(path.split("."))

    def get_dotted(params: Mapping[str, Any]) -> Any:
        literal = params.get(path, MISSING)
        nested = _walk(params, parts)
        if literal is MISSING:
            return nested
        if nested is MISSING:
            return literal
        try:
            same = type(literal) is type(nested) and bool(literal == nested)
        except Exception:
            same = False
        return literal if same else AMBIGUOUS

    return get_dotted


def lookup(params: Mapping[str, Any], path: str) -> Any:
    """One-off lookup (conditions compile their paths once with ``compile_path`` instead)."""
    return compile_path(path)(params)


def is_absent(value: Any) -> bool:
    return isinstance(value, _Absent)
