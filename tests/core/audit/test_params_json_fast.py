"""The direct C encoder behind ``params_json`` writes exactly what ``JSONEncoder.encode`` wrote.

The params text is stored and hashed with the intent, so the change of encoder must not change
one byte of it: not an escaped character, a float's spelling, or a value only ``default`` can
encode (bytes, datetimes, sets).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.redact import Redactor
from aegis.runtime.audit import record
from aegis.runtime.audit.record import _params_encoder, params_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
    | st.binary(max_size=8)
    | st.datetimes()
    | st.frozensets(st.integers(), max_size=3)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_the_fast_encoder_is_in_use() -> None:
    assert record._encode_params is not _params_encoder.encode


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.text(), values, min_size=1, max_size=5))
def test_params_text_is_what_the_encoder_wrote(params: dict[str, Any]) -> None:
    assert params_json(params, Redactor.disabled()) == _params_encoder.encode(params)


def test_odd_values_still_go_through_default() -> None:
    params = {"when": dt.datetime(2026, 1, 2, 3, 4, 5), "raw": b"\xff", "s": frozenset({2, 1})}
    assert params_json(params, Redactor.disabled()) == _params_encoder.encode(params)
