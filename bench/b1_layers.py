"""b1 on a file store, peeled in layers: our SQL alone, the audit store, the whole ``run_one``.

Why: b1 / floor mixes three costs, the disk's, SQLite's for our design's statements, and
Python's. This times, alternating in one process on the same disk, the same action three ways:

* ``sql``: the writer's two transactions for one action (the PRAGMA switches, ``BEGIN
  IMMEDIATE``, the head read and write, the intent INSERT, the outcome UPDATE, the COMMITs)
  replayed in raw ``sqlite3`` on a real store file with the real row's values, no Aegis code;
* ``store``: ``AuditStore.begin`` + ``finish`` (redaction, hashing, the file guard, the writer);
* ``run_one``: the whole pipeline (``bench/b1_cpu.py``'s round);

plus the raw one-commit floor (``bench/floor.py``). Run it in a venv with the core installed::

    .nox/tests/bin/python bench/b1_layers.py [--rounds 3] [--actions 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from b1_cpu import _round
from floor import raw_commit_floor
from sides import Ours
from workload import READ, write_policies

WARMUP = 500
HEAD = "SELECT last_id, last_hash, last_final FROM aegis_audit_head WHERE id = 1"
SET_HEAD = "UPDATE aegis_audit_head SET last_id = ?, last_hash = ?, last_final = ? WHERE id = 1"


def _measure(step: Callable[[], None], actions: int) -> dict[str, float]:
    for _ in range(WARMUP):
        step()
    cpu0, sys0, wall0 = time.process_time(), os.times().system, time.perf_counter()
    for _ in range(actions):
        step()
    wall1, cpu1, sys1 = time.perf_counter(), time.process_time(), os.times().system
    return {
        "cpu": (cpu1 - cpu0) / actions * 1e6,
        "sys": (sys1 - sys0) / actions * 1e6,
        "wall": (wall1 - wall0) / actions * 1e6,
    }


def sql_layer(side: Ours, policy: Any, workdir: Path, actions: int) -> dict[str, float]:
    """The writer's statements for one action, in raw sqlite3, on a store Aegis created."""
    from aegis.runtime.audit.schema import INTENT_COLUMNS, RESULT_COLUMNS

    asyncio.run(_round(side, policy, workdir, "file", 1, 100, None))  # a real store, real rows
    conn = sqlite3.connect(workdir / "aegis_audit.db", isolation_level=None)
    cols = ", ".join(INTENT_COLUMNS)
    last = "FROM aegis_audit ORDER BY id DESC LIMIT 1"
    row = conn.execute(f"SELECT {cols} {last}").fetchone()
    outcome = conn.execute(f"SELECT {', '.join(RESULT_COLUMNS[1:])} {last}").fetchone()
    marks = ", ".join("?" * (len(INTENT_COLUMNS) + 4))
    insert = (
        f"INSERT INTO aegis_audit (id, {cols}, prev_hash, row_hash, owner, result) "
        f"VALUES ({marks}, 'pending')"
    )
    sets = ", ".join(f"{c} = ?" for c in RESULT_COLUMNS)
    final = f"UPDATE aegis_audit SET {sets}, result_hash = ? WHERE id = ? AND result = 'pending'"
    cur = conn.cursor()
    digest = "a" * 64

    def step() -> None:
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("BEGIN IMMEDIATE")
        cur.execute(HEAD)
        last_id, last_hash, last_final = cur.fetchone()
        last_id += 1
        cur.executemany(insert, [(last_id, *row, last_hash, digest, "bench")])
        cur.execute(SET_HEAD, (last_id, digest, last_final))
        cur.execute("COMMIT")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("BEGIN IMMEDIATE")
        cur.execute(HEAD)
        last_id, last_hash, last_final = cur.fetchone()
        last_final += 1
        cur.execute(final, (last_final, *outcome, digest, last_id))
        cur.execute(SET_HEAD, (last_id, last_hash, last_final))
        cur.execute("COMMIT")

    try:
        return _measure(step, actions)
    finally:
        conn.close()


def store_layer(side: Ours, policy: Any, workdir: Path, actions: int) -> dict[str, float]:
    """``AuditStore.begin`` + ``finish`` for b1's action, no runtime around them."""
    from aegis import Result, ResultStatus
    from aegis.runtime.audit import AuditStore

    action = side.action(READ)
    decision = policy.evaluate(action)
    result = Result(action, ResultStatus.SUCCESS, attempts=1, decision=decision)

    async def go() -> dict[str, float]:
        async with AuditStore(f"sqlite:///{workdir / 'aegis_audit.db'}") as store:

            async def one() -> None:
                audit_id = await store.begin(action, decision, None)
                await store.finish(audit_id, result)

            for _ in range(WARMUP):
                await one()
            cpu0, sys0, wall0 = time.process_time(), os.times().system, time.perf_counter()
            for _ in range(actions):
                await one()
            wall1, cpu1, sys1 = time.perf_counter(), time.process_time(), os.times().system
        return {
            "cpu": (cpu1 - cpu0) / actions * 1e6,
            "sys": (sys1 - sys0) / actions * 1e6,
            "wall": (wall1 - wall0) / actions * 1e6,
        }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--actions", type=int, default=3000)
    args = parser.parse_args()
    side = Ours()
    layers = ["sql", "store", "run_one"]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in [*layers, "floor"]}
    with tempfile.TemporaryDirectory(prefix="b1layers-") as root:
        three, _ = write_policies(Path(root))
        policy = side.load(three)
        for i in range(args.rounds):
            for name in layers if i % 2 == 0 else layers[::-1]:
                workdir = Path(tempfile.mkdtemp(prefix=f"{name}{i}-", dir=root))
                if name == "sql":
                    row = sql_layer(side, policy, workdir, args.actions)
                elif name == "store":
                    row = store_layer(side, policy, workdir, args.actions)
                else:
                    row = asyncio.run(
                        _round(side, policy, workdir, "file", args.actions, WARMUP, None)
                    )
                rows[name].append(row)
                print(_fmt(f"{name} {i + 1}", row), flush=True)
            floor_dir = Path(tempfile.mkdtemp(prefix=f"floor{i}-", dir=root))
            floor = raw_commit_floor(floor_dir)["mean_s"] * 1e6
            rows["floor"].append({"cpu": 0.0, "sys": 0.0, "wall": floor})
            print(f"{f'floor {i + 1}':>10}: wall {floor:6.1f} us/commit", flush=True)
    floor_median = statistics.median(r["wall"] for r in rows["floor"])
    for name in layers:
        median = {k: statistics.median(r[k] for r in rows[name]) for k in rows[name][0]}
        print(_fmt(f"{name} median", median) + f"  / floor {median['wall'] / floor_median:.2f}x")
    print(f"{'floor median':>14}: wall {floor_median:6.1f} us/commit")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _fmt(label: str, row: dict[str, float]) -> str:
    return (
        f"{label:>14}: CPU {row['cpu']:6.1f} us/action (kernel {row['sys']:5.1f})"
        f"  wall {row['wall']:6.1f} us/action"
    )


if __name__ == "__main__":
    main()
