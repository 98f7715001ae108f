"""The direct C encoder behind ``canonical`` writes exactly what ``JSONEncoder.encode`` wrote.

Why: every row hash is SHA-256 over this text, and old rows are verified by re-encoding their
columns, so a single differing byte (an escaped character, a float's spelling, a separator)
would report an honest trail as edited. Hypothesis draws the values columns can hold (text with
any code point, floats including NaN/inf, huge ints, nested lists and objects) and compares.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.runtime.audit import chain_walk
from aegis.runtime.audit.chain_walk import _dumps, canonical

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_the_fast_encoder_is_in_use() -> None:
    # Otherwise the differential test below would compare _dumps with itself.
    assert chain_walk._fast_dumps is not None


@settings(max_examples=600, deadline=None)
@given(st.lists(values, max_size=14))
def test_canonical_matches_the_json_encoder(columns: list[Any]) -> None:
    expected = _dumps(list(columns))
    assert canonical(columns) == expected
    assert canonical(tuple(columns)) == expected
    assert chain_walk._fast_dumps is not None
    assert chain_walk._fast_dumps(columns) == expected


def test_fixed_spellings_hash_as_before() -> None:
    # Pinned text: escaping of non-ASCII and controls, float spellings, separators.
    row = [1, 'é\u2028\x00"\\', 1e16, 0.1, float("nan"), float("-inf"), None, True, {"k": [2]}]
    assert canonical(row) == (
        '[1,"\\u00e9\\u2028\\u0000\\"\\\\",1e+16,0.1,NaN,-Infinity,null,true,{"k":[2]}]'
    )
