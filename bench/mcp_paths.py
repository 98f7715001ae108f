"""m1 and h1 (BENCH.md, "No-code-change paths").

m1 (needs agent-aegis-mcp): one MCP ``tools/call`` through ``aegis mcp-proxy`` (stdio) minus the
same call made directly, same upstream (tests/adapters/mcp/upstream_server.py), auto rule,
audited at full durability. Calls alternate between the two sessions so drift on a noisy
machine hits both. A third step in the same loop runs the proxy's governance alone
(``run_one`` in this process: same policy, same durability, a no-op executor), so the added
latency splits into governance (decision + durable audit) and forwarding (everything else);
the proxy answers before the outcome commit (``recorded.answer_early``), so forwarding is the
added latency minus governance up to that answer.
h1 (needs agent-aegis-hooks): a Claude Code ``PreToolUse`` hook as Claude Code runs it, a new
process per call, auto rule, audit write included, three ways: the ``aegis-hook`` client with a
running hook daemon (what ``--install`` sets up), the same client deciding in-process
(``--daemon off``: no daemon), and ``aegis hook claude-code`` through the full CLI. The daemon
client alternates call by call with a bare ``python -c pass``, the floor no Python hook can go
under on this machine. Hook processes run with bytecode caching on (``PYTHONDONTWRITEBYTECODE``
removed from their environment) as after a pip install: without ``.pyc`` files every
in-process call compiles SQLAlchemy and the core from source (seconds, not milliseconds).

    python bench/mcp_paths.py [--only m1|h1] [--calls 2000] [--hooks 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = str(ROOT / "tests" / "adapters" / "mcp" / "upstream_server.py")
AEGIS = str(Path(sys.executable).parent / "aegis")
AEGIS_HOOK = str(Path(sys.executable).parent / "aegis-hook")
POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: tools
    match: {type: "echo"}
    risk_level: low
    approval: auto
  - name: shell
    match: {type: bash}
    risk_level: low
    approval: auto
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def m1(calls: int, workdir: Path) -> dict[str, float]:
    from aegis.adapters.mcp import tool_action
    from mcp import ClientSession, StdioServerParameters, stdio_client

    policy = workdir / "policy.yaml"
    db = f"sqlite:///{workdir / 'm1.db'}"
    direct = StdioServerParameters(command=sys.executable, args=[UPSTREAM])
    proxied = StdioServerParameters(
        command=AEGIS,
        args=["mcp-proxy", "--policy", str(policy), "--db", db, "--", sys.executable, UPSTREAM],
    )
    relay = str(ROOT / "bench" / "mcp_relay.py")
    relayed = StdioServerParameters(
        command=sys.executable, args=[relay, "--mode", "asyncio", "--", sys.executable, UPSTREAM]
    )
    threaded = StdioServerParameters(
        command=sys.executable, args=[relay, "--mode", "threads", "--", sys.executable, UPSTREAM]
    )
    from aegis.runtime.recorded import answer_early

    times: dict[str, list[float]] = {
        "direct": [],
        "proxy": [],
        "relay": [],
        "threads": [],
        "governance": [],
        "answer": [],
    }
    answered: list[float] = []
    answer_early.set(lambda _result: answered.append(time.perf_counter()))
    runtime = _governance_only(policy, f"sqlite:///{workdir / 'm1-governance.db'}")
    await runtime.open()
    async with (
        stdio_client(direct) as (r1, w1),
        ClientSession(r1, w1) as s1,
        stdio_client(proxied) as (r2, w2),
        ClientSession(r2, w2) as s2,
        stdio_client(relayed) as (r3, w3),
        ClientSession(r3, w3) as s3,
        stdio_client(threaded) as (r4, w4),
        ClientSession(r4, w4) as s4,
    ):
        await s1.initialize()
        await s2.initialize()
        await s3.initialize()
        await s4.initialize()
        sessions = {"direct": s1, "proxy": s2, "relay": s3, "threads": s4}
        order = ("direct", "threads", "relay", "proxy")
        proxy_pid = _child_pid("mcp-proxy")
        cpu_start = governance_cpu = 0.0
        for i in range(calls + 200):  # the first 200 are warm-up
            if i == 200:
                cpu_start = _cpu_seconds(proxy_pid)
            for name in order if i % 2 else order[::-1]:
                start = time.perf_counter()
                result = await sessions[name].call_tool("echo", {"i": i})
                elapsed = time.perf_counter() - start
                assert not result.is_error, result
                if i >= 200:
                    times[name].append(elapsed * 1000)
            start, cpu_before = time.perf_counter(), time.thread_time()
            answered.clear()
            done = await runtime.run_one(tool_action("echo", "upstream", {"i": i}))
            elapsed = time.perf_counter() - start
            assert done.ok and answered, done
            if i >= 200:
                times["governance"].append(elapsed * 1000)
                times["answer"].append((answered[0] - start) * 1000)
                governance_cpu += time.thread_time() - cpu_before
        cpu = (_cpu_seconds(proxy_pid) - cpu_start) * 1000 / calls
    await runtime.close()
    d, p = times["direct"], times["proxy"]
    governance = statistics.median(times["governance"])
    return {
        # CPU the proxy process spends per call: a floor under the added latency that a busy
        # machine does not inflate (wall-clock figures there are mostly waiting for a core).
        "m1_proxy_cpu_ms_per_call": cpu,
        "m1_direct_p50_ms": statistics.median(d),
        # the floor: a relay that only forwards lines (bench/mcp_relay.py), same two extra hops
        "m1_relay_added_p50_ms": statistics.median(times["relay"]) - statistics.median(d),
        "m1_relay_added_p99_ms": pct(times["relay"], 0.99) - pct(d, 0.99),
        # the same hops without asyncio: blocking os.read/os.write, a thread per direction
        "m1_threads_relay_added_p50_ms": statistics.median(times["threads"]) - statistics.median(d),
        "m1_threads_relay_added_p99_ms": pct(times["threads"], 0.99) - pct(d, 0.99),
        "m1_proxy_p50_ms": statistics.median(p),
        "m1_added_p50_ms": statistics.median(p) - statistics.median(d),
        "m1_direct_p99_ms": pct(d, 0.99),
        "m1_proxy_p99_ms": pct(p, 0.99),
        "m1_added_p99_ms": pct(p, 0.99) - pct(d, 0.99),
        "m1_governance_p50_ms": governance,
        # What the proxy's answer waits for: the decision and the write-ahead record (the
        # outcome is committed after the answer is sent: recorded.answer_early).
        "m1_governance_to_answer_p50_ms": statistics.median(times["answer"]),
        "m1_governance_cpu_ms_per_call": governance_cpu * 1000 / calls,
        "m1_forwarding_p50_ms": statistics.median(p)
        - statistics.median(d)
        - statistics.median(times["answer"]),
    }


def _governance_only(policy: Path, db: str) -> Any:
    """What the proxy runs for each call, minus the MCP around it (as ``serve_stdio`` sets it)."""
    from aegis.adapters.base import BaseExecutor
    from aegis.core.policy import Policy
    from aegis.core.result import Result, ResultStatus
    from aegis.runtime.engine import Runtime

    class Nothing(BaseExecutor):
        async def execute(self, action: Any) -> Result:
            return Result(action, ResultStatus.SUCCESS)

    runtime = Runtime(executor=Nothing(), policy=Policy.from_yaml(policy), audit=db)
    runtime.audit.inline_when = "idle"
    return runtime


def _child_pid(marker: str) -> int:
    """The pid of our child process whose command line contains ``marker``."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if ppid == me and marker in cmdline:
            return int(entry)
    raise RuntimeError(f"no child process running {marker!r}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


HOOK_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
FLOOR = [sys.executable, "-c", "pass"]


def _hook_times(commands: list[list[str]], runs: int, workdir: Path) -> list[list[float]]:
    """Per command (alternating call by call): wall ms per call, then CPU ms per call last."""
    payload = {
        "session_id": "bench",
        "cwd": str(workdir),
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
    }
    times: list[list[float]] = [[] for _ in commands]
    cpu = [0.0 for _ in commands]
    for i in range(runs + 3):
        for n, command in enumerate(commands):
            data = json.dumps({**payload, "tool_use_id": f"t{i}-{time.time_ns()}"})
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                command, input=data, capture_output=True, text=True, check=True, env=HOOK_ENV
            )
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert command is FLOOR or '"allow"' in done.stdout, done.stdout + done.stderr
            if i >= 3:
                times[n].append(elapsed * 1000)
                cpu[n] += after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    for n in range(len(commands)):  # the last item: CPU ms of the process per call (load-proof)
        times[n].append(cpu[n] * 1000 / runs)
    return times


def h1(hooks: int, workdir: Path) -> dict[str, float]:
    policy = str(workdir / "policy.yaml")
    db = f"sqlite:///{workdir / 'h1.db'}"
    sock = workdir / "run" / "h1.sock"
    sock.parent.mkdir(mode=0o700)
    args = ["claude-code", "--policy", policy, "--db", db]
    daemon = subprocess.Popen(
        [AEGIS, "hook", "daemon", "--policy", policy, "--db", db, "--socket", str(sock)],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if sock.exists():
                break
            time.sleep(0.05)
        client = [AEGIS_HOOK, *args, "--socket", str(sock), "--daemon", "running"]
        with_daemon, floor = _hook_times([client, FLOOR], hooks, workdir)
    finally:
        daemon.terminate()
        daemon.wait(30)
    [without] = _hook_times([[AEGIS_HOOK, *args, "--daemon", "off"]], max(5, hooks // 4), workdir)
    [cli] = _hook_times([[AEGIS, "hook", *args]], max(5, hooks // 4), workdir)
    out: dict[str, float] = {}
    runs = (("daemon", with_daemon), ("floor", floor), ("inprocess", without), ("cli", cli))
    for name, values in runs:
        out[f"h1_{name}_cpu_ms"] = values.pop()
        out[f"h1_{name}_p50_ms"] = statistics.median(values)
        out[f"h1_{name}_p99_ms"] = pct(values, 0.99)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--hooks", type=int, default=40)
    parser.add_argument("--only", choices=["m1", "h1"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {"load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "policy.yaml").write_text(POLICY, encoding="utf-8")
        if args.only != "h1":
            figures.update(asyncio.run(m1(args.calls, workdir)))
        if args.only != "m1":
            figures.update(h1(args.hooks, workdir))
    figures["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if "m1_added_p50_ms" in figures:
        print(
            f"m1 proxy overhead, stdio, audited: p50 +{figures['m1_added_p50_ms']:.3f} ms "
            f"(direct {figures['m1_direct_p50_ms']:.3f}, proxy {figures['m1_proxy_p50_ms']:.3f});"
            f" p99 +{figures['m1_added_p99_ms']:.3f} ms; proxy CPU "
            f"{figures['m1_proxy_cpu_ms_per_call']:.3f} ms/call   target: <= 1 ms p50 added\n"
            f"m1 floor, a Python relay that only forwards lines (asyncio): p50 "
            f"+{figures['m1_relay_added_p50_ms']:.3f} ms, "
            f"p99 +{figures['m1_relay_added_p99_ms']:.3f} ms\n"
            f"m1 floor, the same relay with a thread per direction, blocking os.read/os.write:"
            f" p50 +{figures['m1_threads_relay_added_p50_ms']:.3f} ms, "
            f"p99 +{figures['m1_threads_relay_added_p99_ms']:.3f} ms\n"
            f"m1 governance in-process (decision + durable audit) p50 "
            f"{figures['m1_governance_p50_ms']:.3f} ms, of which before the answer (decision + "
            f"write-ahead record) {figures['m1_governance_to_answer_p50_ms']:.3f} ms; forwarding "
            f"{figures['m1_forwarding_p50_ms']:+.3f} ms; governance CPU "
            f"{figures['m1_governance_cpu_ms_per_call']:.3f} ms/call"
        )
    for name, label in (
        ("daemon", "aegis-hook client, hook daemon running"),
        ("floor", "bare python -c pass, alternating with it (the floor)"),
        ("inprocess", "aegis-hook client, no daemon (--daemon off)"),
        ("cli", "aegis hook claude-code (full CLI, in-process)"),
    ):
        if f"h1_{name}_p50_ms" in figures:
            what = "" if name == "floor" else " (new process, audited)"
            target = "" if name == "floor" else "   target: <= 100 ms p50"
            print(
                f"h1 {label}, per call{what}: "
                f"p50 {figures[f'h1_{name}_p50_ms']:.1f} ms, "
                f"p99 {figures[f'h1_{name}_p99_ms']:.1f} ms, "
                f"process CPU {figures[f'h1_{name}_cpu_ms']:.1f} ms{target}"
            )
    print(f"load average over the run: {figures['load_before']} -> {figures['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
