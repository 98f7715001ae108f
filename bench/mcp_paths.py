"""m1 and h1 (BENCH.md, "No-code-change paths"): needs a venv with agent-aegis-mcp installed.

m1: one MCP ``tools/call`` through ``aegis mcp-proxy`` (stdio) minus the same call made
directly, same upstream (tests/adapters/mcp/upstream_server.py), auto rule, audited at full
durability. Calls alternate between the two sessions so drift on a noisy machine hits both.
h1: ``aegis hook claude-code`` as Claude Code runs it (a new process per call), auto rule,
audit write included.

    python bench/mcp_paths.py [--calls 2000] [--hooks 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    from mcp import ClientSession, StdioServerParameters, stdio_client

    policy = workdir / "policy.yaml"
    db = f"sqlite:///{workdir / 'm1.db'}"
    direct = StdioServerParameters(command=sys.executable, args=[UPSTREAM])
    proxied = StdioServerParameters(
        command=AEGIS,
        args=["mcp-proxy", "--policy", str(policy), "--db", db, "--", sys.executable, UPSTREAM],
    )
    times: dict[str, list[float]] = {"direct": [], "proxy": []}
    async with (
        stdio_client(direct) as (r1, w1),
        ClientSession(r1, w1) as s1,
        stdio_client(proxied) as (r2, w2),
        ClientSession(r2, w2) as s2,
    ):
        await s1.initialize()
        await s2.initialize()
        sessions = {"direct": s1, "proxy": s2}
        for i in range(calls + 200):  # the first 200 are warm-up
            for name in ("direct", "proxy") if i % 2 else ("proxy", "direct"):
                start = time.perf_counter()
                result = await sessions[name].call_tool("echo", {"i": i})
                elapsed = time.perf_counter() - start
                assert not result.is_error, result
                if i >= 200:
                    times[name].append(elapsed * 1000)
    d, p = times["direct"], times["proxy"]
    return {
        "m1_direct_p50_ms": statistics.median(d),
        "m1_proxy_p50_ms": statistics.median(p),
        "m1_added_p50_ms": statistics.median(p) - statistics.median(d),
        "m1_direct_p99_ms": pct(d, 0.99),
        "m1_proxy_p99_ms": pct(p, 0.99),
        "m1_added_p99_ms": pct(p, 0.99) - pct(d, 0.99),
    }


def h1(hooks: int, workdir: Path) -> dict[str, float]:
    policy = workdir / "policy.yaml"
    db = f"sqlite:///{workdir / 'h1.db'}"
    payload = {
        "session_id": "bench",
        "cwd": str(workdir),
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
    }
    times: list[float] = []
    for i in range(hooks + 3):
        data = json.dumps({**payload, "tool_use_id": f"t{i}"})
        start = time.perf_counter()
        done = subprocess.run(
            [AEGIS, "hook", "claude-code", "--policy", str(policy), "--db", db],
            input=data,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
        assert '"allow"' in done.stdout, done.stdout + done.stderr
        if i >= 3:
            times.append(elapsed * 1000)
    return {"h1_p50_ms": statistics.median(times), "h1_p99_ms": pct(times, 0.99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--hooks", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "policy.yaml").write_text(POLICY, encoding="utf-8")
        figures: dict[str, Any] = asyncio.run(m1(args.calls, workdir))
        figures.update(h1(args.hooks, workdir))
    print(
        f"m1 proxy overhead, stdio, audited: p50 +{figures['m1_added_p50_ms']:.3f} ms "
        f"(direct {figures['m1_direct_p50_ms']:.3f}, proxy {figures['m1_proxy_p50_ms']:.3f}); "
        f"p99 +{figures['m1_added_p99_ms']:.3f} ms   target: <= 1 ms p50 added"
    )
    print(
        f"h1 claude-code hook per call (new process, audited): p50 {figures['h1_p50_ms']:.1f} ms, "
        f"p99 {figures['h1_p99_ms']:.1f} ms   target: <= 100 ms p50"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
