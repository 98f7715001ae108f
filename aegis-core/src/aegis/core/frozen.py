"""Params as immutable data, and the canonical digest that binds an approval to them.

An action's params are frozen when the ``Action`` is made. What the policy decided on, what a
human approved and what the executor receives are then one and the same value: neither the
caller nor a handler holds anything through which it could change it later.

Supported values are the JSON-like ones (``str``, ``int``, ``float``, ``bool``, ``None``, lists
and tuples, mappings with ``str`` keys) plus a few immutable types that agents commonly pass:
``bytes`` (``bytearray``/``memoryview`` are copied to ``bytes``), ``datetime``/``date``/``time``,
``Decimal``, ``UUID``, and sets (frozen to ``frozenset``). Mappings become ``FrozenDict``; lists
and tuples become tuples. Anything else (a ``deque``, a custom object) is an ``ActionError``
naming the param's path, because Aegis cannot promise that it will not change.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn, cast

from aegis.core.direct_json import direct_encode
from aegis.errors import ActionError

#: Deeper params are refused at construction: every later stage (conditions, redaction, the
#: audit encoder) walks the value, and a clear limit here beats a RecursionError there.
MAX_DEPTH = 64

_SCALARS = frozenset({str, int, float, bool, type(None)})
_IMMUTABLE = (bytes, dt.datetime, dt.date, dt.time, decimal.Decimal, uuid.UUID)


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses every change (it stays a ``dict`` for JSON, SDKs and isinstance).

    Build a changed copy with ``{**params, "k": v}`` and a new ``Action``.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("Action params are frozen; make a new Action to change them")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)


EMPTY: FrozenDict = FrozenDict()


def freeze_params(value: object, field: str = "params") -> FrozenDict:
    """``value`` (a mapping, or None) as a ``FrozenDict``; raises ``ActionError`` otherwise."""
    if value is None:
        return EMPTY
    kind = type(value)
    if kind is FrozenDict:
        return cast(FrozenDict, value)
    # A plain dict is the common case: no ABC isinstance check for it.
    if kind is not dict and not isinstance(value, Mapping):
        raise ActionError(f"Action {field} must be a mapping, not {type(value).__name__}")
    mapping = cast("Mapping[Any, Any]", value)
    if not mapping:
        return EMPTY
    return _freeze_mapping(mapping, field, 1)


def _freeze_mapping(value: Mapping[Any, Any], path: str, depth: int) -> FrozenDict:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise ActionError(
                    f"{path}: key {key!r} is a {type(key).__name__}; param keys must be strings"
                )
            key = str.__str__(key)
        if type(item) in _SCALARS:  # the common case: no path text built for an error
            out[key] = item
        else:
            out[key] = _freeze(item, f"{path}.{key}", depth)
    return FrozenDict(out)


def _freeze(value: Any, path: str, depth: int) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise ActionError(f"{path}: params are nested deeper than {MAX_DEPTH} levels")
    if kind is FrozenDict:
        return value
    if isinstance(value, Mapping):
        return _freeze_mapping(value, path, depth + 1)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v, f"{path}.{i}", depth + 1) for i, v in enumerate(value))
    # Subclasses of the scalars (StrEnum, IntEnum, ...) become the plain value they stand for,
    # so a subclass cannot carry behaviour (a __str__, an __eq__) past the policy.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, set | frozenset):
        members = [_freeze(v, f"{path}.<member>", depth + 1) for v in value]
        try:
            return frozenset(members)
        except TypeError:
            raise ActionError(f"{path}: set members must be hashable values") from None
    raise ActionError(
        f"{path}: a {type(value).__name__} cannot be an action param (use str, int, float, "
        "bool, None, lists, mappings with str keys, bytes, datetime, Decimal or UUID)"
    )


# --- the canonical form ------------------------------------------------------------------------


def canonical_value(value: Any) -> Any:
    """A JSON-encodable form that tells every supported type apart.

    Containers and non-JSON types are tagged (``{"d": …}`` for a mapping, ``{"l": …}`` for a
    sequence, ``{"b": …}`` for bytes …), so no two different values share a form: a mapping
    that merely looks like a tag is itself wrapped.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:  # past str()'s digit limit: hash the hex
        return value if value.bit_length() <= 10_000 else {"x": hex(value)}
    if kind is float:
        return {"f": repr(value)}  # NaN and infinities too, and 1.0 apart from 1
    if kind is FrozenDict:  # what frozen params are made of: no ABC check
        return {"d": {k: canonical_value(v) for k, v in value.items()}}
    if kind is tuple:
        return {"l": [canonical_value(v) for v in value]}
    if isinstance(value, Mapping):
        return {"d": {k: canonical_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"l": [canonical_value(v) for v in value]}
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, frozenset | set):
        forms = sorted(_dump(canonical_value(v)) for v in value)
        return {"s": forms}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {"t": f"{type(value).__name__}:{value.isoformat()}"}
    if isinstance(value, decimal.Decimal):
        return {"n": str(value)}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return {"r": repr(value)}  # not reachable for frozen params


#: ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` without
#: building an encoder per call (the same text: ``dumps`` builds exactly this encoder).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_dump = _ENCODER.encode
#: ``_dump`` for a list, byte-identical and cheaper (``aegis.core.direct_json``).
_dump_list = direct_encode(_ENCODER)


def action_digest(
    type_: str, target: str, params: Mapping[str, Any], agent: str | None, session: str | None
) -> str:
    """SHA-256 over the canonical action: what an approval is bound to."""
    body = _dump_list([type_, target, agent, session, canonical_value(params)])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def thaw(value: Any) -> Any:
    """A mutable copy of frozen params: ``FrozenDict`` -> ``dict``, tuples -> lists, deeply.

    For adapters that hand params to code expecting JSON-shaped values (a framework tool,
    an SDK call). The copy is the callee's to change: the decided action stays frozen.
    """
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value
