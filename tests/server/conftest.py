"""Fixtures for the server: a policy, a recording executor, and an app on a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from server_helpers import (
    ADMIN,
    BOT,
    DEV,
    OPS,
    POLICY,
    RecordingExecutor,
    ServerProcess,
    free_port,
)

from aegis import Runtime
from aegis.runtime.audit import AuditStore
from aegis.runtime.policy_versions import PolicyHistory, VersionedPolicy
from aegis.server.app import create_app
from aegis.server.auth import parse_keys
from aegis.server.context import ServerConfig
from aegis.server.jobs import ServerQueueChannel


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


AppFactory = Callable[..., tuple[Litestar, RecordingExecutor]]


@pytest.fixture
def make_app(policy_file: Path, db_url: str) -> AppFactory:
    def make(
        *,
        executor: bool = True,
        keys: tuple[str, ...] = (OPS, DEV, BOT, ADMIN),
        config: ServerConfig | None = None,
        approval: list[Any] | None = None,
    ) -> tuple[Litestar, RecordingExecutor]:
        recorder = RecordingExecutor()
        store = AuditStore(db_url)
        source = VersionedPolicy.open(
            PolicyHistory(store), policy_file.read_text(), path=str(policy_file)
        )
        runtime = Runtime(
            executor=recorder,
            policy=source,
            approval_handler=approval or [ServerQueueChannel()],
            audit=store,
            approval_timeout=60,
        )
        app = create_app(runtime, keys=parse_keys(keys), config=config, authorize_only=not executor)
        return app, recorder

    return make


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[tuple[TestClient[Litestar], RecordingExecutor]]:
    app, recorder = make_app()
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c, recorder


Start = Callable[..., ServerProcess]
#: Rules the replica tests add: an approval window of 6 s, and a wire whose edit to a large
#: amount asks for another approver (the request reopens for the edited action).
REPLICA_RULES = """\
  - name: quick_window
    match: {type: "quick*"}
    risk_level: high
    approval: approve
    approvers: {timeout: 6}
  - name: wire_large
    match: {type: "wire*"}
    conditions: {param_gt: {amount: 1000}}
    risk_level: critical
    approval: approve
    approvers: {allow: ["key:root"]}
  - name: wire
    match: {type: "wire*"}
    risk_level: high
    approval: approve
    approvers: {allow: ["key:ops"]}
"""


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[tuple[Start, str]]:
    """``start(name, *more_args, env=...)``: one more ``aegis serve`` on the test's
    PostgreSQL; the path of the file every replica's executor appends the actions it ran to."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + REPLICA_RULES)
    record = str(tmp_path / "ran.jsonl")
    started: list[ServerProcess] = []

    def start(name: str, *more: str, env: dict[str, str] | None = None) -> ServerProcess:
        args = [str(policy), "--database", pg_url, "--executor", "server_exec:FileRecorder"]
        args += ["--executor-option", f"path={record}", "--api-key", OPS, "--api-key", DEV]
        args += ["--api-key", ADMIN, *more]
        proc = ServerProcess(args, free_port(), str(tmp_path / f"{name}.log"), env)
        started.append(proc)
        proc.wait_ready()
        return proc

    try:
        yield start, record
    finally:
        for proc in started:
            proc.stop()
