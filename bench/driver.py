"""Runs the whole workload for one side in this process and prints its figures as JSON.

``python bench/driver.py --side ours|peer --out FILE [--smoke]``; ``run.py`` calls it once per
side, each with its own interpreter. Every figure is checked before it counts: evaluation must
match the expected rule, every run_one must end in the expected status, and the audit must hold
exactly one record per action.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import resource
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from floor import guard_check_cost, raw_commit_floor
from sides import Side, load_side
from workload import (
    APPROVED_WRITE,
    BLOCKED_DELETE,
    EVAL_CASES,
    READ,
    ActionSpec,
    Figure,
    Sizes,
    time_per_call,
    write_policies,
)


class BenchFailure(RuntimeError):
    """A figure that would be meaningless because the work was not what it claims."""


def bench_eval(side: Side, policies: dict[str, Any], sizes: Sizes) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for case in EVAL_CASES:
        policy = policies[case.policy]
        action = side.action(case.action)
        got = side.matched_rule(policy, action)
        if got != case.expected_rule:
            raise BenchFailure(f"{case.figure}: matched {got!r}, expected {case.expected_rule!r}")
        seconds, batch = time_per_call(lambda p=policy, a=action: p.evaluate(a), sizes)
        figures[case.figure] = Figure(seconds * 1e6, "us/call", {"batch": batch})
    return figures


def bench_load(side: Side, path: Path, sizes: Sizes) -> Figure:
    """Load + validate + compile, plus one evaluation so that lazy compilation is counted too."""
    probe = side.action(ActionSpec("zzz", "nowhere", {"count": 5}))
    times = []
    for _ in range(sizes.load_repeats):
        start = time.perf_counter()
        policy = side.load(path)
        side.matched_rule(policy, probe)
        times.append(time.perf_counter() - start)
    return Figure(statistics.median(times) * 1e3, "ms", {"runs": [t * 1e3 for t in times]})


async def _sequential(
    side: Side,
    policy: Any,
    workdir: Path,
    durability: str,
    specs: list[tuple[ActionSpec, str]],
    shadow: Any = None,
) -> float:
    actions = [(side.action(spec), expected) for spec, expected in specs]
    runtime = await side.open_runtime(policy, workdir, durability, shadow)
    try:
        start = time.perf_counter()
        for action, expected in actions:
            status = await side.run_one(runtime, action)
            if status != expected:
                raise BenchFailure(f"run_one gave {status!r}, expected {expected!r}")
        elapsed = time.perf_counter() - start
    finally:
        await side.close_runtime(runtime)
    return elapsed


async def _concurrent(side: Side, policy: Any, workdir: Path, sizes: Sizes) -> float:
    runtime = await side.open_runtime(policy, workdir, "full" if side.name == "ours" else "default")

    async def worker() -> None:
        for _ in range(sizes.per_task):
            status = await side.run_one(runtime, side.action(READ))
            if status != "success":
                raise BenchFailure(f"c1: run_one gave {status!r}")

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(sizes.tasks)))
        elapsed = time.perf_counter() - start
    finally:
        await side.close_runtime(runtime)
    return elapsed


def _fresh_dir(root: Path, label: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))
    os.chdir(workdir)  # both sides' default audit database lives in the working directory
    return workdir


def _check_shadow(workdir: Path, label: str) -> None:
    """The shadow really decided (a timed-out or broken shadow would only record an error)."""
    from aegis.runtime.audit import AuditStore

    store = AuditStore(f"sqlite:///{workdir / 'aegis_audit.db'}")
    try:
        verdicts = {str(r.shadow) for r in store.query(limit=200, order="desc")}
    finally:
        store.close_sync()
    if len(verdicts) != 1 or "'approval': 'approve'" not in next(iter(verdicts)):
        raise BenchFailure(f"{label}: unexpected shadow verdicts {sorted(verdicts)[:3]}")


def bench_shadow_eval(shadows: dict[str, Any], sizes: Sizes) -> dict[str, Figure]:
    """What one shadow verdict costs the action: inline, and through the worker threads."""
    from aegis import Action
    from aegis.runtime.shadow import ShadowPolicy

    action = Action(READ.type, READ.target, params=READ.params)
    figures: dict[str, Figure] = {}
    for name, policy in shadows.items():
        shadow = ShadowPolicy(policy)
        calls = 20_000 if name == "b1_shadow" else 2_000
        calls = max(200, calls // (10 if sizes.run_actions < 10_000 else 1))

        async def run(n: int, shadow: ShadowPolicy = shadow, name: str = name) -> float:
            start = time.perf_counter()
            for _ in range(n):
                verdict = await shadow.verdict(action)
            elapsed = time.perf_counter() - start
            if verdict.text is None:
                raise BenchFailure(f"{name}: shadow error {verdict.error}")
            return elapsed

        asyncio.run(run(calls // 10))  # warm-up
        runs = [asyncio.run(run(calls)) / calls for _ in range(3)]
        shadow.close()
        label = "shadow_inline" if name == "b1_shadow" else "shadow_thread"
        figures[label] = Figure(statistics.median(runs) * 1e6, "us/verdict", {"calls": calls})
    return figures


def _check_count(side: Side, workdir: Path, expected: int, label: str) -> None:
    count = asyncio.run(side.count_records(workdir))
    if count != expected:
        raise BenchFailure(f"{label}: {count} audit records for {expected} actions")


def bench_runs(
    side: Side, policy: Any, root: Path, sizes: Sizes, shadows: dict[str, Any] | None = None
) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    shadows = shadows or {}
    n = sizes.run_actions
    reads = [(READ, "success")] * n
    mixed = [(APPROVED_WRITE, "success"), (BLOCKED_DELETE, "blocked")] * (n // 2)
    approves = [(APPROVED_WRITE, "success")] * n
    plans = [
        ("b1", reads, side.durabilities[0]),
        ("b2", mixed, side.durabilities[0]),
        # Issue 5's b2: the approve-rule action alone, auto-approved (a stored request each).
        ("b2_approve", approves, side.durabilities[0]),
    ]
    if "normal" in side.durabilities:
        plans.append(("b1_normal", reads, "normal"))
    floors: list[float] = []
    pairs: list[float] = []
    handoffs: list[float] = []
    # b1 again with a shadow policy beside the live one (ours only: the peer has none), run
    # right after each b1 run so both see the same disk.
    shadowed: dict[str, list[float]] = {name: [] for name in shadows}
    for figure, specs, durability in plans:
        per_action = []
        for _ in range(sizes.repeats):
            if figure == "b1":  # the floor, measured right beside each b1 run, same directory
                floor_dir = _fresh_dir(root, "floor")
                floors.append(raw_commit_floor(floor_dir, **sizes.floor_options())["mean_s"])
                pair = raw_commit_floor(floor_dir, write_ahead=True, **sizes.floor_options())
                pairs.append(pair["mean_s"])
                handed = raw_commit_floor(floor_dir, threaded=True, **sizes.floor_options())
                handoffs.append(handed["mean_s"])
            workdir = _fresh_dir(root, figure)
            elapsed = asyncio.run(_sequential(side, policy, workdir, durability, specs))
            _check_count(side, workdir, len(specs), figure)
            per_action.append(elapsed / len(specs))
            for name, values in shadowed.items() if figure == "b1" else ():
                workdir = _fresh_dir(root, name)
                shadow = shadows[name]
                elapsed = asyncio.run(_sequential(side, policy, workdir, durability, specs, shadow))
                _check_count(side, workdir, len(specs), name)
                _check_shadow(workdir, name)
                values.append(elapsed / len(specs))
        median = statistics.median(per_action)
        figures[figure] = Figure(
            median * 1e6,
            "us/action",
            {"actions": len(specs), "durability": durability, "actions_per_s": 1 / median},
        )
    for name, values in shadowed.items():
        median = statistics.median(values)
        figures[name] = Figure(
            median * 1e6, "us/action", {"actions": n, "shadow": name, "actions_per_s": 1 / median}
        )
    if floors:
        figures["floor"] = Figure(
            statistics.median(floors) * 1e6,
            "us/commit",
            {"what": "raw sqlite3 WAL commit, synchronous=FULL, steady state", "runs": floors},
        )
    if pairs:
        figures["floor_wa"] = Figure(
            statistics.median(pairs) * 1e6,
            "us/action",
            {"what": "raw sqlite3 insert at NORMAL + update at FULL (write-ahead pair)"},
        )
    if handoffs:
        figures["floor_wa_thread"] = Figure(
            statistics.median(handoffs) * 1e6,
            "us/action",
            {"what": "the write-ahead pair, each transaction on a worker thread, awaited"},
        )
    guard = guard_check_cost(_fresh_dir(root, "guard"))
    if guard is not None:
        figures["guard"] = Figure(guard * 1e6, "us/check", {"what": "FileGuard.check()"})
    total = sizes.tasks * sizes.per_task
    rates = []
    for _ in range(sizes.repeats):
        workdir = _fresh_dir(root, "c1")
        elapsed = asyncio.run(_concurrent(side, policy, workdir, sizes))
        _check_count(side, workdir, total, "c1")
        rates.append(total / elapsed)
    figures["c1"] = Figure(
        statistics.median(rates), "actions/s", {"tasks": sizes.tasks, "per_task": sizes.per_task}
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", choices=["ours", "peer"], required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON figures")
    parser.add_argument("--groups", default="abcde", help="figure groups to run, e.g. 'ad'")
    parser.add_argument("--actions", type=int, default=None, help="b-figure actions (10,000)")
    args = parser.parse_args()
    sizes = Sizes.smoke_sizes() if args.smoke else Sizes()
    if args.actions is not None:
        sizes = dataclasses.replace(sizes, run_actions=args.actions)
    side = load_side(args.side)
    with tempfile.TemporaryDirectory(prefix=f"aegis-bench-{side.name}-") as tmp:
        root = Path(tmp)
        three, thousand = write_policies(root)
        figures: dict[str, Figure] = {}
        if "d" in args.groups:
            figures["d1"] = bench_load(side, thousand, sizes)
        policies = {"3": side.load(three), "1000": side.load(thousand)}
        if "a" in args.groups:
            figures.update(bench_eval(side, policies, sizes))
        if "b" in args.groups or "c" in args.groups:
            maker = getattr(side, "shadow_policies", None)
            shadows = maker(root) if maker is not None else None
            figures.update(bench_runs(side, policies["3"], root, sizes, shadows))
            if shadows:
                figures.update(bench_shadow_eval(shadows, sizes))
        os.chdir(root.parent)
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        figures["e1"] = Figure(rss_kib / 1024, "MiB")
    report = {
        "side": side.name,
        "version": side.version,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "smoke": sizes.smoke,
        "figures": {k: vars(v) for k, v in figures.items()},
    }
    # A file, not stdout: an implementation may print to stdout while it runs.
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
