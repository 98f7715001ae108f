"""Real Chromium (Debian's, by path) against a page served on 127.0.0.1.

Without a browser the tests skip, except under ``CI=true``, where that is a failure: CI must not
pass by not testing (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aegis.adapters.playwright import PlaywrightExecutor

from aegis import Policy, Runtime
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore
from plugin_helpers import Human

POLICY = """\
version: "1"
defaults: {risk_level: medium, approval: approve}
rules:
  - name: local_navigation
    match: {type: "navigate"}
    risk_level: low
    approval: auto
  - name: no_js
    match: {type: "evaluate"}
    risk_level: critical
    approval: block
  - name: submit_needs_a_human
    match: {type: "click", target: "#submit"}
    risk_level: high
    approval: approve
  - name: page_interaction
    match: {type: "*"}
    risk_level: low
    approval: auto
"""

PAGE = """<!doctype html>
<html><head><title>Signup</title></head><body>
<form onsubmit="return false">
  <input id="name">
  <select id="plan"><option value="free">Free</option><option value="pro">Pro</option></select>
  <button id="preview" type="button"
    onclick="document.getElementById('out').textContent='preview:' +
      document.getElementById('name').value + '/' + document.getElementById('plan').value">
    Preview</button>
  <button id="submit" type="button"
    onclick="document.getElementById('out').textContent='submitted'">Submit</button>
</form>
<p id="out">nothing yet</p>
</body></html>
"""


def chromium_path() -> str:
    found = os.environ.get("AEGIS_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    message = "Debian's chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    (root / "signup.html").write_text(PAGE)
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> PlaywrightExecutor:
    return PlaywrightExecutor(executable_path=chromium_path(), timeout_ms=3_000)


@pytest.fixture
async def runtime(
    browser: PlaywrightExecutor, store: AuditStore, human: Human
) -> AsyncIterator[Runtime]:
    async with Runtime(
        executor=browser,
        policy=Policy.from_yaml_string(POLICY, source="browser-policy.yaml"),
        approval_handler=CallbackApprovalHandler(human),
        audit=store,
        agent_id="browser-bot",
        session_id="sess-b",
    ) as rt:
        yield rt
