"""CPU time per action, split by thread, for the c1 shape on our runtime.

Why: c1 (100 tasks x 100 ``run_one`` on one runtime, full durability) is bound by the GIL, so
Python time on the audit writer thread costs throughput as directly as time on the event-loop
thread. Wall-clock rates on a shared 2-core machine are noisy; each thread's CPU clock
(``time.pthread_getcpuclockid`` + ``clock_gettime``, Linux) is much steadier and says which
thread a change made cheaper.

Run it in a venv with the core installed (e.g. the one ``nox -s tests`` builds)::

    .nox/tests/bin/python bench/c1_cpu.py [--tasks 100] [--per-task 100] [--rounds 3]

It prints, per round: wall rate, and CPU us/action of the main thread, the writer thread
(``aegis-audit-writer``), every other thread together and the whole process; then the medians.
It reads ``bench/workload.py`` and ``bench/sides.py`` so the shape is the bench's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sides import Ours
from workload import READ, write_policies

WRITER = "aegis-audit-writer"


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far of every live thread, by name (duplicates summed)."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            seconds = time.clock_gettime(clock)
        except (OSError, ProcessLookupError):  # the thread ended between enumerate and here
            continue
        name = "main" if thread is threading.main_thread() else thread.name
        out[name] = out.get(name, 0.0) + seconds
    return out


async def _round(
    side: Ours, policy: Any, workdir: Path, tasks: int, per_task: int
) -> dict[str, float]:
    runtime = await side.open_runtime(policy, workdir, "full")

    async def worker() -> None:
        for _ in range(per_task):
            status = await side.run_one(runtime, side.action(READ))
            if status != "success":
                raise RuntimeError(f"run_one gave {status!r}")

    # Warm up (opens the store, starts the writer thread) outside the measured window.
    await asyncio.gather(*(worker() for _ in range(2)))
    writer_threads = [t for t in threading.enumerate() if t.name == WRITER]
    before, process0, start = _thread_cpu(), time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(tasks)))
        elapsed = time.perf_counter() - start
        after, process1 = _thread_cpu(), time.process_time()
    finally:
        await side.close_runtime(runtime)
    if not writer_threads:
        raise RuntimeError(f"no {WRITER} thread: is the store not the group-commit writer?")
    n = tasks * per_task
    main = after["main"] - before["main"]
    writer = after.get(WRITER, 0.0) - before.get(WRITER, 0.0)
    process = process1 - process0
    return {
        "rate": n / elapsed,
        "main": main / n * 1e6,
        "writer": writer / n * 1e6,
        "other": (process - main - writer) / n * 1e6,
        "process": process / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--per-task", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    side = Ours()
    rows = []
    with tempfile.TemporaryDirectory(prefix="c1cpu-") as root:
        three, _ = write_policies(Path(root))
        policy = side.load(three)
        for i in range(args.rounds):
            workdir = Path(tempfile.mkdtemp(prefix=f"r{i}-", dir=root))
            cwd = os.getcwd()
            os.chdir(workdir)  # the default store is aegis_audit.db in the working directory
            try:
                row = asyncio.run(_round(side, policy, workdir, args.tasks, args.per_task))
            finally:
                os.chdir(cwd)
            rows.append(row)
            print(_fmt(f"round {i + 1}", row), flush=True)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(_fmt("median", median))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _fmt(label: str, row: dict[str, float]) -> str:
    return (
        f"{label:>8}: {row['rate']:8,.0f} actions/s  CPU us/action: main {row['main']:6.1f}"
        f"  writer {row['writer']:6.1f}  other {row['other']:5.1f}  process {row['process']:6.1f}"
    )


if __name__ == "__main__":
    main()
