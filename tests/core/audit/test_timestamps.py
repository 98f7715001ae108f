"""The audit's timestamp text: the same as ``datetime.isoformat`` for every instant, though it
is built from a cached second (it runs twice per action)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.runtime.audit import record

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def expected(nanos: int) -> str:
    instant = EPOCH + dt.timedelta(microseconds=nanos // 1000)
    return instant.isoformat(timespec="microseconds")


@given(st.lists(st.integers(min_value=0, max_value=253_402_300_799_999_999_999), max_size=20))
def test_every_instant_reads_as_isoformat(instants: list[int]) -> None:
    clock = iter(instants)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(record.time, "time_ns", lambda: next(clock))
        for nanos in instants:
            assert record.now_iso() == expected(nanos)


@pytest.mark.parametrize(
    "sequence",
    [
        # across a second, a day, a year and a leap day, and back in time (the clock was set)
        [1_767_225_599_999_999_000, 1_767_225_600_000_000_000, 1_767_225_600_000_001_999],
        [1_709_164_799_999_999_999, 1_709_164_800_000_000_000, 1_709_251_200_000_000_000],
        [1_767_225_600_500_000_000, 1_767_225_599_500_000_000, 1_767_225_600_500_000_000],
    ],
)
def test_the_cached_second_follows_the_clock(
    monkeypatch: pytest.MonkeyPatch, sequence: list[int]
) -> None:
    clock = iter(sequence)
    monkeypatch.setattr(record.time, "time_ns", lambda: next(clock))
    got = [record.now_iso() for _ in sequence]
    assert got == [expected(n) for n in sequence]
    assert all(len(stamp) == len("2026-01-01T00:00:00.000000+00:00") for stamp in got)
