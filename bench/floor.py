"""The physical floor of b1: one raw SQLite WAL commit with ``synchronous=FULL``, steady state.

When every record must be on disk before ``run_one`` returns, nothing can beat one fsynced
commit per action. This measures exactly that with the standard library's ``sqlite3`` and no
Aegis at all: one small row (about an audit row's size) inserted and committed per iteration,
in WAL mode, ``synchronous=FULL``, in a fresh file in the same directory as the b1 runs.

Steady state: until the WAL has been checkpointed once and starts being reused from its
beginning, every commit also grows the file and flushes its size metadata, which costs about
twice as much; b1's 10,000 actions are almost all past that point, so the floor is measured
past it too. Warm-up runs until the WAL file has stopped growing for ``settle`` commits.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROW = "x" * 300  # about the size of one b1 audit row's text


def raw_commit_floor(
    directory: Path,
    *,
    commits: int = 3000,
    settle: int = 1500,
    max_warmup: int = 30_000,
    write_ahead: bool = False,
    threaded: bool = False,
) -> dict[str, float]:
    """Seconds per fsynced commit (mean over ``commits``), after the WAL reached steady state.

    ``write_ahead=True`` times what Aegis' design needs at the SQLite level instead: per action,
    one row inserted and committed at ``synchronous=NORMAL`` (the write-ahead record: survives a
    process crash) and then updated and committed at ``synchronous=FULL`` (the fsynced outcome),
    still in raw ``sqlite3``. The difference from the plain floor is the price of the write-ahead
    record itself; what b1 spends above this is Python.

    ``threaded=True`` issues the write-ahead pair as a program that must not block its
    event loop does: each transaction on one worker thread, awaited from an asyncio loop. The
    difference from the inline pair is the price of two thread hand-offs around an fsync (each
    wakes a sleeping thread, and on a VM a sleeping vCPU). Aegis' writer thread pays a cheaper
    form of it (its own thread and lock, no future per call), so this is a measure of the term,
    not a lower bound for b1.
    """
    path = directory / "floor.db"
    for leftover in directory.glob("floor.db*"):
        leftover.unlink()
    _commit = _write_ahead_pair if write_ahead else _one_commit
    pool = ThreadPoolExecutor(1) if threaded else None
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=not threaded)
    if pool is not None:
        _commit = _handed_off(pool)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        wal = Path(f"{path}-wal")
        size, still, warm = -1, 0, 0
        while still < settle and warm < max_warmup:
            _commit(conn)
            warm += 1
            now = os.path.getsize(wal)
            still = still + 1 if now == size else 0
            size = now
        times = []
        for _ in range(commits):
            start = time.perf_counter()
            _commit(conn)
            times.append(time.perf_counter() - start)
        grew = os.path.getsize(wal) != size
    finally:
        conn.close()
        if pool is not None:
            pool.shutdown()
    return {
        "mean_s": sum(times) / len(times),
        "median_s": statistics.median(times),
        "warmup_commits": float(warm),
        "wal_grew_while_timed": float(grew),
    }


def _one_commit(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t (body) VALUES (?)", (ROW,))
    conn.execute("COMMIT")


def _write_ahead_pair(conn: sqlite3.Connection) -> None:
    _outcome(conn, _ahead(conn))


def _handed_off(pool: ThreadPoolExecutor) -> Callable[[sqlite3.Connection], None]:
    """The write-ahead pair, each transaction run on ``pool``'s thread and awaited from a loop.

    One loop serves every call (a new loop per action would time the loop's start-up instead).
    """
    loop = asyncio.new_event_loop()

    async def pair(conn: sqlite3.Connection) -> None:
        row = await loop.run_in_executor(pool, _ahead, conn)
        await loop.run_in_executor(pool, _outcome, conn, row)

    def commit(conn: sqlite3.Connection) -> None:
        loop.run_until_complete(pair(conn))

    return commit


def _ahead(conn: sqlite3.Connection) -> int:
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute("INSERT INTO t (body) VALUES (?)", (ROW,)).lastrowid
    conn.execute("COMMIT")
    assert row is not None
    return row


def _outcome(conn: sqlite3.Connection, row: int) -> None:
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE t SET body = ? WHERE id = ?", (ROW[:40], row))
    conn.execute("COMMIT")


def guard_check_cost(directory: Path, checks: int = 20_000) -> float | None:
    """Seconds per ``FileGuard.check`` (the deleted-file check run in every write transaction).

    None where the side has no such guard (the peer).
    """
    try:
        from aegis.runtime.audit.file import FileGuard
    except ImportError:
        return None
    path = directory / "guard.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        _ = conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
        guard = FileGuard(path)
        guard.arm()
        check = guard.check
        start = time.perf_counter()
        for _ in range(checks):
            check()
        elapsed = time.perf_counter() - start
        guard.close()
    finally:
        conn.close()
    return elapsed / checks
