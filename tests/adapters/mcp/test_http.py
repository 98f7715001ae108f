"""Streamable HTTP on 127.0.0.1: the proxy serves it, and an upstream may speak it too."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_testkit import AEGIS, UPSTREAM, upstream_env

from aegis.runtime.audit import AuditStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.1)):
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


@pytest.fixture
def spawn() -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_http_proxy_in_front_of_an_http_upstream(
    tmp_path: Path, policy_file: Path, db_url: str, upstream_log: Any, spawn: Any
) -> None:
    up_port, proxy_port = free_port(), free_port()
    upstream = spawn(
        [sys.executable, UPSTREAM],
        {**upstream_env(upstream_log, "web"), "UPSTREAM_HTTP_PORT": str(up_port)},
    )
    await wait_for_port(up_port, upstream)
    config = tmp_path / "servers.json"
    config.write_text(
        json.dumps({"mcpServers": {"web": {"url": f"http://127.0.0.1:{up_port}/mcp"}}}),
        encoding="utf-8",
    )
    proxy = spawn(
        [
            AEGIS,
            "mcp-proxy",
            "--policy",
            str(policy_file),
            "--db",
            db_url,
            "--http",
            f"127.0.0.1:{proxy_port}",
            "--config",
            str(config),
        ],
        {},
    )
    await wait_for_port(proxy_port, proxy)
    url = f"http://127.0.0.1:{proxy_port}/mcp"
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = {t.name for t in (await session.list_tools()).tools}
        ok = await session.call_tool("read_file", {"path": "/h"})
        blocked = await session.call_tool("delete_file", {"path": "/h"})
    assert "read_file" in listed and "delete_file" not in listed
    assert ok.is_error is False and ok.content[0].text == "web: contents of /h"
    assert blocked.is_error is True and "Blocked by Aegis policy" in blocked.content[0].text
    assert [c["tool"] for c in upstream_log()] == ["read_file"]
    store = AuditStore(db_url)
    try:
        rows = [(r.action_type, r.target, r.result) for r in store.query(limit=None)]
    finally:
        store.close_sync()
    assert ("read_file", "web", "success") in rows and ("delete_file", "web", "blocked") in rows
