"""BENCH.md's scale figures (f1-f4), for this project only: ``nox -s bench -- --scale``.

The targets compare this project with itself (f2 with b1 on an empty store, f4 with a3/a4), so
there is no peer side. The 1,000,000-record store is written straight into SQLite with the
store's own record builders and hash functions (through ``run_one`` it would take many minutes);
f1 then proves it is a valid trail: ``verify`` must report it intact, or no figure counts.

* f1: ``AuditStore.verify()`` over 1M records, records/s, in a fresh process whose peak RSS is
  reported beside the same run over 100k records (constant memory: the two should be close),
  with the CPU seconds of every process it used (it walks id ranges in a process per core);
  also ``verify`` against a signed checkpoint (chain + Merkle tree over the outcomes).
* f2: sequential ``run_one`` (full durability) on a copy of the 1M store vs an empty store,
  both open at once, in alternating batches (which goes first alternates too); ratio of the
  medians, and the median and quartiles of the per-batch ratios.
* f3: ``query`` with one filter (session, action type glob, risk, since) on 1M records, the
  last 100 matches (what ``aegis audit -n 100`` asks for), median ms; and ``--chain``.
* f4: evaluate with 10,000 rules (the 1,000-rule pattern x10), last rule and no match, against
  a3/a4 (1,000 rules) measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from workload import ActionSpec, Figure, Sizes, thousand_rule_yaml, time_per_call

TYPES = ("read_contact", "update_contact", "send_email", "delete_contact", "export_report")
RISKS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


def build_store(path: Path, n: int, batch: int = 20_000) -> float:
    """Write ``n`` final records (a valid chain) into a new store at ``path``; seconds taken."""
    from aegis import Action, Approval, PolicyDecision, Result, ResultStatus, RiskLevel
    from aegis.core.redact import DEFAULT_REDACTOR
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.chain import canonical, intent_json, result_hash, row_hash
    from aegis.runtime.audit.record import intent_values, outcome_values
    from aegis.runtime.audit.schema import GENESIS_HASH, INTENT_COLUMNS, RESULT_COLUMNS

    url = f"sqlite:///{path}"
    store = AuditStore(url)
    store.open_sync()
    store.close_sync()
    start = time.perf_counter()
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cols = ("id", *INTENT_COLUMNS, *RESULT_COLUMNS, "prev_hash", "row_hash", "result_hash")
    sql = f"INSERT INTO aegis_audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    prev = GENESIS_HASH
    levels = list(RiskLevel)
    decisions = {}
    for i in range(4):
        act = Action(TYPES[i], "crm")
        decisions[i] = PolicyDecision(act, levels[i], Approval.AUTO, matched_rule=f"rule_{i}")
    rows: list[tuple[Any, ...]] = []
    for rid in range(1, n + 1):
        k = rid % len(TYPES)
        chain = f"task-{rid // 50}" if rid % 10 == 0 else None
        act = Action(
            TYPES[k],
            f"crm_{rid % 97}",
            {"id": rid, "email": "someone@example.com"},
            agent_id=f"agent-{rid % 13}",
            session_id=f"s{rid // 100}",
            chain_id=chain,
            chain_depth=1 if chain else 0,
        )
        stamp = (base + dt.timedelta(milliseconds=rid * 10)).isoformat(timespec="microseconds")
        decision = decisions[rid % 4]
        values = intent_values(act, decision, None, "auto", None, DEFAULT_REDACTOR, stamp)
        rest = outcome_values(
            Result(act, ResultStatus.SUCCESS, attempts=1, duration_ms=1.5), DEFAULT_REDACTOR, stamp
        )
        new = row_hash(prev, rid, intent_json(values))
        outcome = (rid, *rest)
        sealed = result_hash(new, canonical(list(outcome)))
        rows.append((rid, *values, *outcome, prev, new, sealed))
        prev = new
        if len(rows) >= batch:
            conn.executemany(sql, rows)
            rows.clear()
    if rows:
        conn.executemany(sql, rows)
    conn.execute(
        "UPDATE aegis_audit_head SET last_id = ?, last_hash = ?, last_final = ? WHERE id = 1",
        (n, prev, n),
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - start


VERIFY_CHILD = """
import json, resource, sys, time
from aegis.runtime.audit import AuditStore
store = AuditStore(sys.argv[1])
start = time.perf_counter()
if len(sys.argv) > 2:
    from aegis.runtime.audit.checkpoint import Checkpoint
    from aegis.runtime.audit.evidence import verify_against
    from aegis.runtime.audit.keys import load_public_key
    report = verify_against(store.engine, [Checkpoint.load(sys.argv[2])],
                            load_public_key(sys.argv[3]))
    ok, checked = report.ok, report.chain.checked
else:
    report = store.verify()
    ok, checked = report.ok, report.checked
elapsed = time.perf_counter() - start
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
rss = max(me.ru_maxrss, kids.ru_maxrss) / 1024
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({"ok": ok, "checked": checked, "seconds": elapsed, "rss_mib": rss, "cpu_s": cpu}))
"""


def verify_in_child(url: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", VERIFY_CHILD, url, *extra],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if not result["ok"]:
        raise RuntimeError(f"verify of {url} did not pass: the generated store is wrong")
    return result


def _workers() -> int:
    from aegis.runtime.audit.verify import workers

    return workers()


def bench_f1(root: Path, big: Path, small: Path) -> dict[str, Figure]:
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.checkpoint import make_checkpoint, write_checkpoint
    from aegis.runtime.audit.keys import generate_keypair, load_private_key

    generate_keypair(root / "k.key", root / "k.pub")
    cp_file = root / "cp.json"
    start = time.perf_counter()
    signer = load_private_key(root / "k.key")
    cp = make_checkpoint(AuditStore(f"sqlite:///{big}").engine, signer)
    checkpoint_s = time.perf_counter() - start
    write_checkpoint(cp, cp_file)
    small_run = verify_in_child(f"sqlite:///{small}")
    runs = [verify_in_child(f"sqlite:///{big}") for _ in range(3)]
    best = statistics.median(r["seconds"] for r in runs)
    signed = verify_in_child(f"sqlite:///{big}", str(cp_file), str(root / "k.pub"))
    n = runs[0]["checked"]
    return {
        "f1": Figure(
            n / best,
            "records/s",
            {
                "records": n,
                "seconds": best,
                "rss_mib_1m": statistics.median(r["rss_mib"] for r in runs),
                # CPU seconds of every process (this one and its range walkers): on a busy
                # machine the wall clock also counts time spent waiting for a core.
                "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                "workers": _workers(),
                "rss_mib_100k": small_run["rss_mib"],
                "records_per_s_100k": small_run["checked"] / small_run["seconds"],
            },
        ),
        "f1_checkpoint": Figure(
            n / signed["seconds"],
            "records/s",
            {"seconds": signed["seconds"], "rss_mib": signed["rss_mib"], "sign_s": checkpoint_s},
        ),
    }


def _runtime(store: Any) -> Any:
    from aegis import AutoApprovalHandler, Policy, Runtime
    from aegis.adapters.base import BaseExecutor
    from aegis.core.result import Result, ResultStatus

    class NoOp(BaseExecutor):
        async def execute(self, action: Any) -> Result:
            return Result(action=action, status=ResultStatus.SUCCESS)

    policy = Policy.from_dict(
        {
            "version": "1",
            "defaults": {"risk_level": "medium", "approval": "block"},
            "rules": [{"name": "reads", "match": {"type": "read*"}, "approval": "auto"}],
        }
    )
    return Runtime(
        executor=NoOp(), policy=policy, approval_handler=AutoApprovalHandler(), audit=store
    )


async def _interleaved(urls: dict[str, str], batches: int, batch: int) -> dict[str, list[float]]:
    """Both stores open at once; batches of ``batch`` sequential ``run_one`` alternate between
    them (which goes first alternates too), so load on this shared machine falls on both
    alike. Seconds per action, one value per batch."""
    from aegis import Action
    from aegis.core.result import ResultStatus
    from aegis.runtime.audit import AuditStore

    stores = {k: AuditStore(u) for k, u in urls.items()}
    times: dict[str, list[float]] = {k: [] for k in urls}
    for store in stores.values():
        await store.open()
    try:
        runtimes = {k: _runtime(s) for k, s in stores.items()}
        for which in urls:  # warm-up: first writes, the WAL's first checkpoint
            for _ in range(batch):
                await runtimes[which].run_one(Action("read_contact", "crm_prod", {"id": 1}))
        names = list(urls)
        for b in range(batches):
            for which in names if b % 2 == 0 else reversed(names):
                rt = runtimes[which]
                start = time.perf_counter()
                for _ in range(batch):
                    result = await rt.run_one(Action("read_contact", "crm_prod", {"id": 1}))
                    if result.status is not ResultStatus.SUCCESS:
                        raise RuntimeError(f"f2: run_one gave {result.status}")
                times[which].append((time.perf_counter() - start) / batch)
    finally:
        for store in stores.values():
            await store.close()
    return times


def bench_f2(root: Path, big: Path, batches: int, batch: int) -> dict[str, Figure]:
    full_db, empty_db = root / "f2-full.db", root / "f2-empty.db"
    shutil.copy(big, full_db)
    os.sync()  # the copy's dirty pages are flushed now, not during the timed fsyncs
    urls = {"empty": f"sqlite:///{empty_db}", "full": f"sqlite:///{full_db}"}
    times = asyncio.run(_interleaved(urls, batches, batch))
    empty, full = statistics.median(times["empty"]), statistics.median(times["full"])
    ratios = sorted(f / e for e, f in zip(times["empty"], times["full"], strict=True))
    quartiles = statistics.quantiles(ratios, n=4)
    for path in (full_db, empty_db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "f2": Figure(
            full / empty,
            "x b1",
            {
                "b1_empty_us": empty * 1e6,
                "b1_1m_us": full * 1e6,
                "batch_ratio_median": statistics.median(ratios),
                "batch_ratio_q1": quartiles[0],
                "batch_ratio_q3": quartiles[2],
                "batches": batches,
                "actions_per_batch": batch,
            },
        )
    }


def bench_f3(big: Path, repeats: int = 7) -> dict[str, Figure]:
    from aegis.runtime.audit import AuditStore

    store = AuditStore(f"sqlite:///{big}")
    n = store.count()
    cases: dict[str, dict[str, Any]] = {
        "session": {"session": f"s{n // 200}"},
        "type": {"action_type": "delete*"},
        "risk": {"risk_level": "critical"},
        "since": {"since": "2026-01-01T01:00:00+00:00"},
        "type+risk": {"action_type": "export*", "risk_level": "low"},
        "type (no match)": {"action_type": "transfer*"},
        "type (no prefix)": {"action_type": "*_contact"},
    }
    out: dict[str, Figure] = {}
    worst = 0.0
    detail: dict[str, float] = {}
    for name, flt in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            found = store.query(**flt, limit=100, order="desc")
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1e3
        detail[f"{name}_ms"] = ms
        detail[f"{name}_rows"] = len(found)
        worst = max(worst, ms)
    from aegis.runtime.audit.delegation import chain_records

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        chain = chain_records(store.engine, f"task-{n // 100}")
        times.append(time.perf_counter() - start)
    detail["chain_ms"] = statistics.median(times) * 1e3
    detail["chain_rows"] = len(chain)
    out["f3"] = Figure(worst, "ms (slowest filter)", detail)
    return out


def bench_f4(root: Path, sizes: Sizes) -> dict[str, Figure]:
    from aegis import Action, Policy

    figures: dict[str, Figure] = {}
    for count in (1000, 10_000):
        path = root / f"policy-{count}.yaml"
        path.write_text(thousand_rule_yaml(count))
        policy = Policy.from_yaml(path)
        last = ActionSpec(f"op_{count - 1}_x", f"svc_{count - 1}_a", {"count": count})
        for label, spec, rule in (
            ("last", last, f"rule_{count - 1}"),
            ("none", ActionSpec("zzz", "nowhere", {"count": 5}), None),
        ):
            action = Action(spec.type, spec.target, params=spec.params)
            got = policy.evaluate(action).matched_rule
            if got != rule:
                raise RuntimeError(f"f4: {count} rules matched {got!r}, expected {rule!r}")
            seconds, _batch = time_per_call(lambda p=policy, a=action: p.evaluate(a), sizes)
            figures[f"{count}_{label}"] = Figure(seconds * 1e6, "us/call")
    return {
        "f4": Figure(
            max(
                figures["10000_last"].value / figures["1000_last"].value,
                figures["10000_none"].value / figures["1000_none"].value,
            ),
            "x a3/a4 (worse of the two)",
            {k: v.value for k, v in figures.items()},
        )
    }


TARGETS = {
    "f1": ("verify 1M records", lambda v: v >= 200_000, ">= 200,000 records/s"),
    "f1_checkpoint": ("verify 1M against a checkpoint (chain + tree)", None, "(reported)"),
    "f2": ("run_one at 1M existing rows / empty store", lambda v: v <= 1.1, "<= 1.1x"),
    "f3": ("filtered query, last 100 of 1M", lambda v: v < 100, "< 100 ms"),
    "f4": ("evaluate 10,000 rules vs 1,000 (a3/a4)", lambda v: v <= 1.5, "<= 1.5x"),
}


def markdown(figures: dict[str, Figure], smoke: bool) -> str:
    lines = ["| figure | what | value | unit | target | met? |", "|---|---|---:|---|---|---|"]
    for key, (what, check, text) in TARGETS.items():
        fig = figures.get(key)
        if fig is None:
            continue
        met = "-" if check is None or smoke else ("yes" if check(fig.value) else "**no**")
        lines.append(f"| {key} | {what} | {fig.value:,.2f} | {fig.unit} | {text} | {met} |")
    lines.append("")
    for key, fig in figures.items():
        shown = ", ".join(
            f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in fig.detail.items()
        )
        lines.append(f"- {key}: {shown}")
    if smoke:
        lines.append("\nSMOKE RUN: reduced store, figures not comparable to the targets.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--figures", default="f1,f2,f3,f4", help="which figures to run")
    args = parser.parse_args()
    wanted = set(args.figures.split(","))
    n = 20_000 if args.smoke else args.records
    sizes = Sizes.smoke_sizes() if args.smoke else Sizes()
    figures: dict[str, Figure] = {}
    with tempfile.TemporaryDirectory(prefix="aegis-bench-scale-") as tmp:
        root = Path(tmp)
        big, small = root / "big.db", root / "small.db"
        print(f"building a {n:,}-record store ...", flush=True)
        built = build_store(big, n)
        build_store(small, max(n // 10, 1))
        print(f"built in {built:.1f} s", flush=True)
        if "f1" in wanted:
            figures.update(bench_f1(root, big, small))
        if "f3" in wanted:
            figures.update(bench_f3(big))
        if "f4" in wanted:
            figures.update(bench_f4(root, sizes))
        if "f2" in wanted:
            batches = 4 if args.smoke else 40
            figures.update(bench_f2(root, big, batches, 50 if args.smoke else 250))
    table = markdown(figures, args.smoke)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "scale-smoke" if args.smoke else "scale"
    if wanted != {"f1", "f2", "f3", "f4"}:
        stem += "-" + "-".join(sorted(wanted))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    payload = {"when": stamp, "records": n, "figures": {k: vars(v) for k, v in figures.items()}}
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (args.out / f"{stem}.md").write_text(f"Scale benchmark {stamp}\n\n{table}")
    print(f"written: {args.out / (stem + '.json')}, {args.out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
