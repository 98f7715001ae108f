"""The compact form of a callback token (``tokens.compact``/``expand``), which chat channels
with short callback data put in their buttons; the core checks the expanded token as any."""

from __future__ import annotations

from aegis.runtime.approval.tokens import compact, expand

TOKEN = f"{'ab' * 16}.{'0f' * 16}"


def test_a_token_round_trips_in_43_characters() -> None:
    ref = compact(TOKEN)
    assert len(ref) == 43 and "." not in ref and expand(ref) == TOKEN


def test_anything_else_passes_through_unchanged() -> None:
    for odd in ("not-a-token", "zz.yy", f"{'ab' * 8}.{'0f' * 8}", ""):
        assert compact(odd) == odd
    for odd in ("short", "x" * 42 + ".", "!" * 43):
        assert expand(odd) == odd
