"""Stateful conditions (issue 9): what a rate_limit / budget / repeat / sequence rule costs.

``python bench/limits.py [--smoke] [--out DIR]`` (``run.py`` calls it after the peer
comparison; ours only, there is no peer figure to compare with). Figures:

* l1-<condition>: ``Policy.evaluate`` of a 3-rule policy whose first rule carries the
  condition, with a state holding a small history: in memory (the condition's own CPU cost),
  and on a SQLite snapshot of an audit database holding 1,000 usage rows (what the runtime
  pays to decide before approval; the final decision reads the same way inside the write).
* l2: ``run_one`` sequential, file SQLite at full durability, auto rule: the same 3-rule
  policy without limits (as b1) and with a ``rate_limit`` rule the action passes through, in
  the same run; the ratio is the price of counting exactly in the audit transaction.

Every figure is checked: the evaluation must match the expected rule, every run_one must
succeed, and the audit must hold one record per action.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

BASE = """
  - name: reads
    match: {type: "read*"}
    risk_level: low
    approval: auto
  - name: writes
    match: {type: "write*", target: "crm*"}
    conditions: {param_gt: {count: 100}}
    risk_level: high
    approval: approve
  - name: deletes
    match: {type: "delete*"}
    risk_level: critical
    approval: block
"""

LIMITS = {
    "rate_limit": "rate_limit: {max: 1000000, per: 1h, key: agent}",
    "budget": "budget: {param: id, max: 1000000000, per: 1h, key: agent}",
    "repeat": "repeat: {max: 1000000, per: 10m}",
    "sequence": 'sequence: ["read_secret*", "read*|http_post*"]',
}


def policy_text(condition: str | None) -> str:
    head = "version: '1'\ndefaults: {risk_level: medium, approval: block}\nrules:\n"
    if condition is None:
        return head + BASE
    limited = (
        f'  - name: limited\n    match: {{type: "read*"}}\n    conditions: {{{condition}}}\n'
        "    risk_level: high\n    approval: block\n"
    )
    return head + limited + BASE


def per_call(fn: Any, batch: int, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def fill(policy: Any, action: Any, url: str, path: Path, rows: int = 1000) -> None:
    """An audit database whose usage table holds ``rows`` rows of the policy's limit: those
    the action itself would write (so the count is read over real rows), or for a sequence
    earlier steps in other sessions."""
    import sqlite3

    from aegis.core.stateful import MemoryLimitState
    from aegis.runtime.audit import AuditStore

    created = AuditStore(url)
    created.open_sync()  # creates the tables
    created.close_sync()
    probe = MemoryLimitState()
    policy.evaluate(action, state=probe)
    now = time.time()
    if probe.pending:
        lid, key, _, amount = probe.pending[0]
        data = [(lid, key, now - i * 0.5, amount) for i in range(rows)]
    else:
        lid = policy.limits[0].limit_id
        data = [(f"{lid}#0", f"other-{i}", now - i * 0.5, 1.0) for i in range(rows)]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO aegis_limit_usage (limit_id, key, at, amount) VALUES (?, ?, ?, ?)", data
        )


def bench_eval(root: Path, smoke: bool) -> dict[str, float]:
    from aegis import Action, Policy
    from aegis.core.stateful import MemoryLimitState
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.limit_state import read_state

    batch, rounds = (200, 3) if smoke else (5000, 5)
    action = Action("read_contact", "crm_prod", {"id": 1}, agent_id="a", session_id="s")
    out: dict[str, float] = {}
    for name, condition in LIMITS.items():
        policy = Policy.from_yaml_string(policy_text(condition))
        memory = MemoryLimitState()
        for _ in range(5):
            policy.evaluate(action, state=memory)
            memory.commit()

        def mem(p: Any = policy, s: Any = memory, name: str = name) -> None:
            got = p.evaluate(action, state=s)
            s.pending.clear()
            if got.matched_rule != "reads":
                raise RuntimeError(f"{name}: matched {got.matched_rule!r}")

        out[f"l1_{name}_memory"] = per_call(mem, batch, rounds) * 1e6
        url = f"sqlite:///{root / f'{name}.db'}"

        fill(policy, action, url, root / f"{name}.db")
        store = AuditStore(url)
        store.open_sync()
        try:

            def snap(p: Any = policy, st: Any = store, name: str = name) -> None:
                state, close = read_state(st)
                try:
                    got = p.evaluate(action, state=state)
                finally:
                    close()
                if got.matched_rule != "reads":
                    raise RuntimeError(f"{name}: matched {got.matched_rule!r}")

            out[f"l1_{name}_sqlite"] = per_call(snap, batch // 5, rounds) * 1e6
        finally:
            store.close_sync()
    plain = Policy.from_yaml_string(policy_text(None))
    out["l1_none"] = per_call(lambda: plain.evaluate(action), batch, rounds) * 1e6
    return out


async def _run_many(policy: Any, url: str, n: int) -> float:
    from aegis import Action, Runtime
    from aegis.adapters.base import BaseExecutor
    from aegis.core.result import Result, ResultStatus
    from aegis.runtime.audit import AuditStore

    class NoOp(BaseExecutor):
        async def execute(self, action: Any) -> Result:
            return Result(action=action, status=ResultStatus.SUCCESS)

    action = Action("read_contact", "crm_prod", {"id": 1}, agent_id="a")
    async with Runtime(executor=NoOp(), policy=policy, audit=url) as runtime:
        for _ in range(20):  # warm-up, and past the WAL's first checkpoint
            await runtime.run_one(action)
        start = time.perf_counter()
        for _ in range(n):
            result = await runtime.run_one(action)
            if result.status is not ResultStatus.SUCCESS:
                raise RuntimeError(f"run_one: {result.status} ({result.reason})")
        elapsed = time.perf_counter() - start
    async with AuditStore(url) as store:
        if store.count() != n + 20:
            raise RuntimeError(f"{store.count()} records for {n + 20} actions")
    return elapsed / n * 1e6


def bench_run(root: Path, smoke: bool) -> dict[str, float]:
    from aegis import Policy

    n, rounds = (100, 1) if smoke else (2000, 3)
    plain = Policy.from_yaml_string(policy_text(None))
    limited = Policy.from_yaml_string(policy_text(LIMITS["rate_limit"]))
    without, with_limit = [], []
    for i in range(rounds):  # alternate who goes first: the disk is shared and noisy
        pair = [("plain", plain), ("limited", limited)]
        for label, policy in pair if i % 2 == 0 else pair[::-1]:
            url = f"sqlite:///{root / f'run-{label}-{i}.db'}"
            value = asyncio.run(_run_many(policy, url, n))
            (without if label == "plain" else with_limit).append(value)
    return {
        "l2_plain": statistics.median(without),
        "l2_rate_limit": statistics.median(with_limit),
    }


def table(figures: dict[str, float], smoke: bool) -> str:
    lines = [
        "| figure | what | us |",
        "|---|---|---:|",
        f"| l1_none | evaluate, 3 rules, no stateful rule | {figures['l1_none']:.2f} |",
    ]
    for name in LIMITS:
        for where, what in (("memory", "in-memory history"), ("sqlite", "SQLite snapshot")):
            key = f"l1_{name}_{where}"
            lines.append(
                f"| {key} | evaluate, a {name} rule in front, {what} | {figures[key]:.2f} |"
            )
    ratio = figures["l2_rate_limit"] / figures["l2_plain"]
    lines += [
        f"| l2_plain | run_one sequential, file SQLite, full (as b1) | {figures['l2_plain']:.0f} |",
        f"| l2_rate_limit | run_one, a rate_limit rule in front (counted in the write) "
        f"| {figures['l2_rate_limit']:.0f} |",
        "",
        f"run_one with a rate_limit rule: {ratio:.2f}x run_one without"
        + (" (smoke run: not comparable)" if smoke else ""),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aegis-bench-limits-") as tmp:
        root = Path(tmp)
        figures = {**bench_eval(root, args.smoke), **bench_run(root, args.smoke)}
    text = table(figures, args.smoke)
    print("\nStateful conditions (ours only):\n")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = "limits-smoke" if args.smoke else "limits"
        (args.out / f"{stem}.json").write_text(json.dumps(figures, indent=2))
        (args.out / f"{stem}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
