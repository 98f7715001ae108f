"""Ids and limits past what the database can hold: an answer, never an OverflowError.

Record ids are 64-bit on every dialect (SQLite INTEGER, PostgreSQL BIGINT). A caller (a script,
``aegis audit -n``, a tail resuming from an id it was handed) may pass any Python int; nothing
can lie above the largest id, everything lies above one below the smallest.
"""

from __future__ import annotations

import datetime as dt

import pytest
from audit_helpers import action, run_action

from aegis.runtime.audit import AuditStore

HUGE = 2**70
INT64_MAX = 2**63 - 1


@pytest.fixture
async def three(store: AuditStore) -> AuditStore:
    for _ in range(3):
        await run_action(store, action())
    return store


@pytest.mark.parametrize("after", [HUGE, INT64_MAX, 2**63])
async def test_after_an_id_no_record_can_have_nothing_follows(
    three: AuditStore, after: int
) -> None:
    assert three.query(after_id=after) == []
    assert three.count(after_id=after) == 0
    assert three.stats(after_id=after) == []


@pytest.mark.parametrize("after", [-HUGE, -(2**63) - 1])
async def test_after_an_id_below_every_record_everything_follows(
    three: AuditStore, after: int
) -> None:
    assert [r.id for r in three.query(after_id=after)] == [1, 2, 3]
    assert three.count(after_id=after) == 3


@pytest.mark.parametrize("audit_id", [HUGE, -HUGE, 2**63, 0])
async def test_get_of_an_id_no_record_can_have_is_none(three: AuditStore, audit_id: int) -> None:
    assert three.get(audit_id) is None


async def test_a_limit_past_every_record_is_no_limit(three: AuditStore) -> None:
    assert [r.id for r in three.query(limit=HUGE)] == [1, 2, 3]
    assert [r.id for r in three.query(limit=HUGE, order="desc")] == [3, 2, 1]


@pytest.mark.parametrize("bad", [-1, -HUGE])
async def test_a_negative_limit_is_a_clear_error(three: AuditStore, bad: int) -> None:
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        three.query(limit=bad)


@pytest.mark.parametrize("bad", ["7", 1.5, True, None])
async def test_an_after_id_that_is_not_an_integer_is_a_clear_error(
    three: AuditStore, bad: object
) -> None:
    if bad is None:  # None is "any": the one non-integer that is allowed
        assert len(three.query(after_id=bad)) == 3  # type: ignore[arg-type]
        return
    with pytest.raises(ValueError, match="after_id must be an integer"):
        three.query(after_id=bad)  # type: ignore[arg-type]


async def test_a_since_further_back_than_any_date_is_everything(three: AuditStore) -> None:
    longest = dt.timedelta.max
    assert three.count(since=longest) == 3
    assert three.count(until=longest) == 0  # until that long ago: before every record
    assert three.count(until=dt.timedelta.min) == 3  # until that far ahead: every record
