"""A ``json.JSONEncoder``'s C encoder, built once and called directly.

Why: the audit trail encodes two or three column lists and the params of every action on the
event-loop thread, and the Python layers of ``JSONEncoder.encode`` (``iterencode``, which builds
a new C encoder on every call) cost about as much as the encoding itself (~2.7 us -> ~1.4 us a
call for the hashed columns, 2.1 -> 1.4 us for b1's params; CPython 3.11). The output comes
from the same C code with the same options, so the text, and every hash over it, is
byte-identical (``tests/core/audit/test_canonical_fast.py`` and ``test_params_json_fast.py``
check it with Hypothesis).

One difference: no circular-reference bookkeeping (``markers=None``), which also makes the
encoder stateless and so safe from any thread. What goes through it holds no cycle (column
values are scalars and flat lists; params are frozen with the Action, at most 64 deep), and a
cycle would still raise (``RecursionError``), so a write still fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def direct_encode(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode`` for lists, tuples and dicts, without its Python layers.

    ``encoder.encode`` itself where CPython's accelerator is missing. Not for a bare ``str``
    (the C encoder takes containers; ``encode`` special-cases strings).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the accelerator
        return encoder.encode
    strings = json.encoder.encode_basestring_ascii if encoder.ensure_ascii else None
    iterencode = make(
        None,
        encoder.default,
        strings or json.encoder.encode_basestring,
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode
