"""CPU time per action of b1 (sequential ``run_one``), on an in-memory or a file store.

Why: b1's wall time on this shared 2-core VM is mostly the disk's fsync, which swings by a
quarter run to run; the CPU the process spends per action (``time.process_time``) is what a
code change moves, and it is far steadier. With ``--store memory`` (``audit="sqlite://"``) no
write or fsync happens at all: the figure is Python plus SQLite's statements, the part of b1
above the physical floor that Aegis itself costs. ``--store file`` is b1 itself (the default
store, ``sqlite:///aegis_audit.db`` in a fresh directory, full durability); ``--floor`` also
times the raw one-commit floor (``bench/floor.py``) beside each file round.

Run it in a venv with the core installed (e.g. the one ``nox -s tests`` builds)::

    .nox/tests/bin/python bench/b1_cpu.py [--store memory|file|both] [--actions 3000]
        [--rounds 3] [--durability full|normal] [--floor] [--profile out.prof]

It prints, per round: CPU us/action of the process (and the kernel's part of it, from
``os.times``: system calls, the page cache, the fsync's own work), wall us/action, and the
floor when asked; then the medians and the load average. ``--profile`` writes a cProfile of
the last round's timed actions (cProfile inflates small calls: use it for where, not how much).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import raw_commit_floor
from sides import Ours
from workload import READ, write_policies


async def _round(
    side: Ours,
    policy: Any,
    workdir: Path,
    store: str,
    actions: int,
    warmup: int,
    prof: Any,
    durability: str = "full",
) -> dict[str, float]:
    aegis = side.aegis
    url = "sqlite://" if store == "memory" else f"sqlite:///{workdir / 'aegis_audit.db'}"
    audit = aegis.AuditStore(url, durability=durability)
    runtime = aegis.Runtime(
        executor=side.executor_type(),
        policy=policy,
        approval_handler=aegis.AutoApprovalHandler(),
        audit=audit,
    )
    await runtime.__aenter__()
    action = side.action(READ)
    try:
        for _ in range(warmup):
            await runtime.run_one(action)
        if prof is not None:
            prof.enable()
        cpu0, sys0, wall0 = time.process_time(), os.times().system, time.perf_counter()
        for _ in range(actions):
            result = await runtime.run_one(action)
        wall1, cpu1, sys1 = time.perf_counter(), time.process_time(), os.times().system
        if prof is not None:
            prof.disable()
        if result.status.value != "success":
            raise RuntimeError(f"run_one gave {result.status.value!r}")
    finally:
        await runtime.__aexit__(None, None, None)
        await audit.close()  # ours, not the runtime's
    return {
        "cpu": (cpu1 - cpu0) / actions * 1e6,
        "sys": (sys1 - sys0) / actions * 1e6,
        "wall": (wall1 - wall0) / actions * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["memory", "file", "both"], default="both")
    parser.add_argument("--actions", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--floor", action="store_true", help="time the raw floor per file round")
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    side = Ours()
    stores = ["memory", "file"] if args.store == "both" else [args.store]
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in stores}
    with tempfile.TemporaryDirectory(prefix="b1cpu-") as root:
        three, _ = write_policies(Path(root))
        policy = side.load(three)
        for i in range(args.rounds):
            for store in stores:
                workdir = Path(tempfile.mkdtemp(prefix=f"{store}{i}-", dir=root))
                last = i == args.rounds - 1
                prof = cProfile.Profile() if args.profile is not None and last else None
                row = asyncio.run(
                    _round(
                        side,
                        policy,
                        workdir,
                        store,
                        args.actions,
                        args.warmup,
                        prof,
                        args.durability,
                    )
                )
                if store == "file" and args.floor:
                    row["floor"] = raw_commit_floor(workdir)["mean_s"] * 1e6
                rows[store].append(row)
                print(_fmt(f"{store} {i + 1}", row), flush=True)
                if prof is not None:
                    suffix = "" if len(stores) == 1 else f".{store}"
                    prof.dump_stats(f"{args.profile}{suffix}")
    for store, found in rows.items():
        median = {k: statistics.median(r[k] for r in found) for k in found[0]}
        print(_fmt(f"{store} median", median))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _fmt(label: str, row: dict[str, float]) -> str:
    text = (
        f"{label:>14}: CPU {row['cpu']:6.1f} us/action (kernel {row['sys']:5.1f})"
        f"  wall {row['wall']:6.1f} us/action"
    )
    if "floor" in row:
        text += f"  floor {row['floor']:6.1f} us/commit  b1/floor {row['wall'] / row['floor']:.2f}x"
    return text


if __name__ == "__main__":
    main()
