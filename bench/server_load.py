"""BENCH.md s1/s2: this project's ``aegis serve`` beside agent-aegis==1.0.0's, same policy, same
load (Debian's ``wrk`` on 127.0.0.1), one server process each, then audit rows counted.

    python bench/server_load.py --ours .nox/plugins-dist-aegis-server/bin/aegis \\
        --peer /tmp/peer-server-venv/bin/aegis --seconds 10 --connections 32

Ours runs with a no-op executor for s2 (``--executor bench_noop:Noop``), as the peer's server
does by default; without one ours would authorise and wait for the caller's report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: read_safe
    match: {type: "read*"}
    risk_level: low
    approval: auto
  - name: write_crm_bulk
    match: {type: "write*", target: "crm*"}
    conditions: {param_gt: {count: 100}}
    risk_level: high
    approval: approve
  - name: no_deletes
    match: {type: "delete*"}
    risk_level: critical
    approval: block
"""

NOOP = """\
from aegis import Action, Result, ResultStatus
from aegis.adapters.base import BaseExecutor


class Noop(BaseExecutor):
    async def execute(self, action: Action) -> Result:
        return Result(action=action, status=ResultStatus.SUCCESS)
"""

SCENARIOS = {
    "s1": ("/api/v1/evaluate", {"action_type": "delete", "target": "db"}),
    "s2": ("/api/v1/execute", {"action_type": "read", "target": "crm"}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} not ready")


def wrk(
    url: str, body: dict[str, str], seconds: int, conns: int, workdir: Path
) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def grab(pattern: str) -> str:
        found = re.search(pattern, out)
        if not found:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{out}")
        return found.group(1)

    def ms(text: str) -> float:
        value = float(re.sub(r"[a-z]+$", "", text))
        unit = re.sub(r"^[0-9.]+", "", text)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(grab(r"Requests/sec:\s+([0-9.]+)")),
        "requests": int(grab(r"(\d+) requests in")),
        "p50_ms": ms(grab(r"50%\s+([0-9.]+[a-z]+)")),
        "p99_ms": ms(grab(r"99%\s+([0-9.]+[a-z]+)")),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process (all its threads) so far: a per-request figure
    that a shared, loaded machine inflates far less than requests/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        table = "aegis_audit" if "aegis_audit" in tables else sorted(tables)[0]
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])


def run_side(name: str, aegis: str, args: list[str], seconds: int, conns: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"aegis-load-{name}-"))
    (workdir / "policy.yaml").write_text(POLICY)
    (workdir / "bench_noop.py").write_text(NOOP)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    log = (workdir / "server.log").open("wb")
    cmd = [aegis, "serve", "policy.yaml", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    figures: dict[str, object] = {"command": " ".join(cmd[1:])}
    try:
        wait_ready(f"http://127.0.0.1:{port}/health")
        for sid, (path, body) in SCENARIOS.items():
            before = rows(workdir / "aegis_audit.db") if sid == "s2" else 0
            cpu = cpu_seconds(proc.pid)
            figures[sid] = wrk(f"http://127.0.0.1:{port}{path}", body, seconds, conns, workdir)
            spent = cpu_seconds(proc.pid) - cpu
            done = figures[sid]["requests"]  # type: ignore[index]
            figures[sid]["cpu_us_per_req"] = round(spent * 1e6 / max(done, 1), 1)  # type: ignore[index]
            if sid == "s2":
                time.sleep(1.0)
                audited = rows(workdir / "aegis_audit.db") - before
                figures[sid]["audited"] = audited  # type: ignore[index]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True)
    parser.add_argument("--peer")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--peer-first", action="store_true", help="alternate the order")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install -y wrk)")
    load = os.getloadavg()
    report: dict[str, object] = {"loadavg_before": load}
    ours_args = ["--database", "sqlite:///aegis_audit.db", "--executor", "bench_noop:Noop"]
    sides = [("ours", opts.ours, ours_args)]
    if opts.peer:
        sides.append(("peer", opts.peer, []))
    for name, aegis, args in reversed(sides) if opts.peer_first else sides:
        report[name] = run_side(name, aegis, args, opts.seconds, opts.connections)
    report["loadavg_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
