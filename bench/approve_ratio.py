"""b2_approve / b1 in one process, wall and CPU: the figure issue 5's b2 target is about.

``python bench/approve_ratio.py [--actions N] [--rounds R]`` (in a venv with aegis-core
installed, e.g. ``.nox/bench``). Rounds alternate which figure runs first; each round is a fresh
default file SQLite store at full durability, as in ``driver.py``. Besides wall time it prints
CPU time (user and system) per action, which a shared machine disturbs far less than wall time:
fsync latency under load swings b1 by 3x between rounds. Only ratios within one run mean much.

``--time-step`` also times the APPROVE step itself (``seek_approval``, wall per call) where it
runs, inside the pipeline: there its code and data are cold after every commit, and it costs
about 2.5x what the same call does in a tight loop, so a loop over it alone misjudges a change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sides import Ours
from workload import APPROVED_WRITE, READ, ActionSpec, write_policies

WARMUP = 50


async def _round(side: Ours, policy: Any, workdir: Path, spec: ActionSpec, n: int) -> list[float]:
    actions = [side.action(spec) for _ in range(n + WARMUP)]
    runtime = await side.open_runtime(policy, workdir, "full")
    try:
        for action in actions[:WARMUP]:
            await side.run_one(runtime, action)
        wall, cpu = time.perf_counter(), time.process_time()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        for action in actions[WARMUP:]:
            status = await side.run_one(runtime, action)
            if status != "success":
                raise RuntimeError(f"run_one gave {status!r}")
        after = resource.getrusage(resource.RUSAGE_SELF)
        return [
            (time.perf_counter() - wall) / n,
            (time.process_time() - cpu) / n,
            (after.ru_utime - usage.ru_utime) / n,
            (after.ru_stime - usage.ru_stime) / n,
        ]
    finally:
        await side.close_runtime(runtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--time-step", action="store_true", help="time seek_approval too")
    args = parser.parse_args()
    step = _timed_step() if args.time_step else None
    side = Ours()
    load_before = os.getloadavg()
    figures: dict[str, list[list[float]]] = {"b1": [], "b2_approve": []}
    with tempfile.TemporaryDirectory(prefix="aegis-approve-ratio-") as tmp:
        root = Path(tmp)
        three, _ = write_policies(root)
        policy = side.load(three)
        plan = [("b1", READ), ("b2_approve", APPROVED_WRITE)]
        for r in range(args.rounds):
            for name, spec in plan if r % 2 == 0 else plan[::-1]:
                workdir = Path(tempfile.mkdtemp(dir=root))
                os.chdir(workdir)  # the default store lives in the working directory
                figures[name].append(asyncio.run(_round(side, policy, workdir, spec, args.actions)))
        os.chdir(root.parent)
    print(
        f"{args.rounds} rounds x {args.actions} actions; load average {load_before} -> "
        f"{os.getloadavg()}"
    )
    for name, runs in figures.items():
        wall, cpu, user, system = (statistics.median(r[i] for r in runs) * 1e6 for i in range(4))
        print(
            f"{name:11s} wall {wall:7.1f} us  cpu {cpu:7.1f} us (user {user:6.1f}, "
            f"sys {system:6.1f})  walls {[round(r[0] * 1e6) for r in runs]}"
        )
    pairs = list(zip(figures["b2_approve"], figures["b1"], strict=True))
    for i, label in ((0, "wall"), (1, "cpu")):
        ratios = [a[i] / b[i] for a, b in pairs]
        print(
            f"b2_approve/b1 {label:4s} median {statistics.median(ratios):.2f}  "
            f"per round {[round(x, 2) for x in ratios]}"
        )
    if step:
        print(
            f"seek_approval in the pipeline: median {statistics.median(step) * 1e6:.1f} us, "
            f"mean {statistics.mean(step) * 1e6:.1f} us over {len(step)} calls"
        )


def _timed_step() -> list[float]:
    """Wrap the pipeline's ``seek_approval`` so every call's wall time is kept (warm-up too)."""
    from aegis.runtime import pipeline

    times: list[float] = []
    seek = pipeline.seek_approval

    async def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await seek(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - began)

    pipeline.seek_approval = timed  # type: ignore[assignment]
    return times


if __name__ == "__main__":
    main()
