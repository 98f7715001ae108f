"""The history a retry's second look reads: the snapshot without the action's own usage rows
(``limit_state._WithoutOwnUse``). It must answer as the table would without those rows, and
never subtract a row the table no longer holds (pruned, or deleted behind the store's back),
which would be laxer than the table. Checked on a real ``aegis_limit_usage`` table (SQLite)
against a plain in-memory history, for any rows, own rows and deletions; rows are matched by
value, so rows sharing a time are generated on purpose.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from aegis.core.stateful import MemoryLimitState, Usage
from aegis.runtime.audit.schema import limit_usage
from aegis.runtime.limit_state import DatabaseLimitState, _WithoutOwnUse

LIMITS, KEYS = ["L", "L#0"], ["a", "b"]
TIMES = st.sampled_from([1.0, 2.0, 2.5, 3.0, 7.25])  # few values: rows often share a time
SQLITE = sqlite_dialect()
ROWS = st.tuples(st.sampled_from(LIMITS), st.sampled_from(KEYS), TIMES, st.sampled_from([1.0, 5.0]))


def table_of(rows: list[Usage]) -> DatabaseLimitState:
    """The store's own table (its DDL, its index) in a fresh in-memory database."""
    conn = sqlite3.connect(":memory:")
    conn.execute(str(CreateTable(limit_usage).compile(dialect=SQLITE)))
    for index in limit_usage.indexes:
        conn.execute(str(CreateIndex(index).compile(dialect=SQLITE)))
    conn.executemany(
        "INSERT INTO aegis_limit_usage (limit_id, key, at, amount) VALUES (?, ?, ?, ?)", rows
    )
    return DatabaseLimitState(conn.cursor(), "qmark")


def minus(rows: list[Usage], gone: list[Usage]) -> list[Usage]:
    left = Counter(gone)
    out = []
    for row in rows:
        if left[row]:
            left[row] -= 1
        else:
            out.append(row)
    return out


@given(
    others=st.lists(ROWS, max_size=8),
    own=st.lists(ROWS, max_size=3),
    deleted=st.lists(st.integers(0, 10), max_size=3),
    since=st.sampled_from([0.0, 1.0, 2.0, 2.5, 9.0]),
)
def test_answers_as_the_table_without_the_own_rows_it_still_holds(
    others: list[Usage], own: list[Usage], deleted: list[int], since: float
) -> None:
    table = others + own
    for i in sorted({i for i in deleted if i < len(table)}, reverse=True):
        del table[i]  # own rows among them, sometimes
    expected = MemoryLimitState()
    expected.rows = minus(table, own)
    seen = _WithoutOwnUse(table_of(table), own)
    for lid in LIMITS:
        for key in KEYS:
            assert seen.count(lid, key, since) == expected.count(lid, key, since)
            assert seen.total(lid, key, since) == expected.total(lid, key, since)
            assert seen.first_after(lid, key, since) == expected.first_after(lid, key, since)
