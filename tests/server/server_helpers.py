"""Shared pieces of the server tests: the policy, the keys, a recording executor."""

from __future__ import annotations

from collections.abc import Callable

from aegis import Action, Result, ResultStatus
from aegis.adapters.base import BaseExecutor

POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: read_safe
    match: {type: "read*"}
    risk_level: low
    approval: auto
  - name: bulk_needs_ops
    match: {type: "bulk_*"}
    conditions: {param_gt: {count: 100}}
    risk_level: high
    approval: approve
    approvers: {allow: ["key:ops", "web:ops"]}
  - name: write_crm
    match: {type: "write*", target: "crm*"}
    risk_level: high
    approval: approve
  - name: no_deletes
    match: {type: "delete*"}
    risk_level: critical
    approval: block
"""

OPS = "ops=ops-key-0123456789abcdef"
DEV = "dev=dev-key-0123456789abcdef:evaluate+execute+audit:read"
BOT = "bot=bot-key-0123456789abcdef:execute@agent-007"
ADMIN = "root=root-key-0123456789abcdef"
KEYS = {"ops": OPS, "dev": DEV, "bot": BOT, "root": ADMIN}


def bearer(name: str) -> dict[str, str]:
    secret = KEYS[name].split("=", 1)[1].split(":", 1)[0].split("@", 1)[0]
    return {"Authorization": f"Bearer {secret}"}


class RecordingExecutor(BaseExecutor):
    """Runs nothing real; remembers every action it was asked to run."""

    def __init__(self) -> None:
        self.ran: list[Action] = []

    async def execute(self, action: Action) -> Result:
        self.ran.append(action)
        return Result(action=action, status=ResultStatus.SUCCESS, data={"ok": True})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``aegis serve`` in a subprocess on 127.0.0.1, as an operator would start it."""

    def __init__(
        self, args: list[str], port: int, log: str, env: dict[str, str] | None = None
    ) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        here = Path(__file__).resolve().parent
        extra = dict(env or {})
        path = os.pathsep.join([str(here), *filter(None, [extra.pop("PYTHONPATH", "")])])
        env = {
            **os.environ,
            "PYTHONPATH": path,
            "AEGIS_SESSION_SECRET": "test-session-secret",
            **extra,
        }
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "aegis"),
                "serve",
                *args,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aegis serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("aegis serve did not become ready")

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``check`` until it holds (a state another process reaches), at most ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()
