"""The dashboard in real Chromium: sign in, approve / deny / edit a pending action, and see
what the waiting agent's action did. Fails (not skips) on CI when Chromium is missing."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_exec import ran
from server_helpers import DEV, OPS, POLICY, ServerProcess, bearer, free_port

CHROMIUM = os.environ.get("AEGIS_CHROMIUM", "/usr/bin/chromium")


def _need_chromium() -> None:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """One server for the module (starting one costs seconds on a loaded machine); each test
    uses its own target so that what ran is told apart."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    record = str(tmp_path / "ran.jsonl")
    port = free_port()
    proc = ServerProcess(
        [
            str(policy),
            "--database",
            f"sqlite:///{tmp_path / 'audit.db'}",
            "--executor",
            "server_exec:FileRecorder",
            "--executor-option",
            f"path={record}",
            "--api-key",
            OPS,
            "--api-key",
            DEV,
        ],
        port,
        str(tmp_path / "server.log"),
    )
    try:
        proc.wait_ready()
        yield proc, record
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(server, browser):  # type: ignore[no-untyped-def]
    context = browser.new_context()  # fresh cookies for every test
    yield context.new_page()
    context.close()


def ran_on(record: str, target: str) -> list[dict]:
    return [r for r in ran(record) if r["target"] == target]


class Agent:
    """An agent waiting on /execute + long-poll in a thread, as a Go or TS client would."""

    def __init__(self, base: str, body: dict) -> None:
        self.base, self.body = base, body
        self.final: dict | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.pending = threading.Event()
        self.request_id: str | None = None
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, headers=bearer("dev"), timeout=70) as c:
            r = c.post("/api/v1/execute", json=self.body)
            out = r.json()
            if r.status_code == 202:
                self.request_id = out["request_id"]
                self.pending.set()
                while r.status_code == 202:
                    r = c.get(out["status_url"], params={"wait": 20})
            self.final = r.json()
            self.pending.set()

    def result(self) -> dict:
        self.thread.join(60)
        assert self.final is not None
        return self.final


def _sign_in(page, base: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/dashboard")
    assert "/dashboard/login" in page.url
    page.fill("input[name=key]", OPS.split("=", 1)[1])
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard")


def _until_live(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    expect(page.locator("#live")).to_have_text("live", timeout=15_000)


def bulk(target: str) -> dict:
    return {"action_type": "bulk_update", "target": target, "params": {"count": 500}}


def test_approve_from_the_page_runs_the_action(server, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, record = server
    agent = Agent(proc.url, bulk("crm_approve"))
    assert agent.pending.wait(30) and agent.request_id
    _sign_in(page, proc.url)
    card = page.locator(f"[data-request='{agent.request_id}']")
    assert card.is_visible()
    assert "web:ops" in card.inner_text()  # who may answer is shown
    shots = Path(os.environ.get("AEGIS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "dashboard-pending.png"), full_page=True)
    card.locator("input[name=reason]").fill("checked the list")
    card.locator("button[value=approve]").click()
    page.wait_for_url("**/dashboard?msg=*")
    final = agent.result()
    assert (final["status"], final["approver"]) == ("success", "web:ops")
    assert [r["type"] for r in ran_on(record, "crm_approve")] == ["bulk_update"]
    page.goto(proc.url + "/dashboard/audit")
    assert page.locator("#chain").inner_text() == "verified"
    page.screenshot(path=str(shots / "dashboard-audit.png"), full_page=True)
    assert "web:ops" in page.inner_text("table")


def test_deny_from_the_page_does_not_run(server, page) -> None:  # type: ignore[no-untyped-def]
    proc, record = server
    agent = Agent(proc.url, bulk("crm_deny"))
    assert agent.pending.wait(30)
    _sign_in(page, proc.url)
    page.locator(f"[data-request='{agent.request_id}'] button[value=deny]").click()
    page.wait_for_url("**/dashboard?msg=*")
    final = agent.result()
    assert (final["status"], final["executed"]) == ("denied", False)
    assert ran_on(record, "crm_deny") == []


def test_edit_from_the_page_is_re_evaluated(server, page) -> None:  # type: ignore[no-untyped-def]
    proc, record = server
    agent = Agent(proc.url, bulk("crm_edit"))
    assert agent.pending.wait(30)
    _sign_in(page, proc.url)
    card = page.locator(f"[data-request='{agent.request_id}']")
    card.locator("textarea[name=edits]").fill('{"count": 150}')
    card.locator("button[value=approve]").click()
    page.wait_for_url("**/dashboard?msg=*")
    final = agent.result()
    assert final["status"] == "success"
    assert [r["params"] for r in ran_on(record, "crm_edit")] == [{"count": 150}]


def test_a_forged_form_without_csrf_token_is_refused(server, page) -> None:  # type: ignore[no-untyped-def]
    proc, record = server
    agent = Agent(proc.url, bulk("crm_a"))
    assert agent.pending.wait(30)
    _sign_in(page, proc.url)
    # the browser's own cookie, but no token: what a cross-site form would send
    r = page.request.post(
        f"{proc.url}/dashboard/approvals/{agent.request_id}/answer",
        form={"verdict": "approve"},
    )
    assert r.status == 403
    with httpx.Client(base_url=proc.url, headers=bearer("ops")) as c:
        c.post(f"/api/v1/approvals/{agent.request_id}/deny", json={"reason": "cleanup"})
    assert agent.result()["status"] == "denied"
    assert ran_on(record, "crm_a") == []


def test_wrong_key_cannot_sign_in(server, page) -> None:  # type: ignore[no-untyped-def]
    proc, _ = server
    page.goto(proc.url + "/dashboard/login")
    page.fill("input[name=key]", DEV.split("=", 1)[1].split(":")[0])  # no approve scope
    page.click("button[type=submit]")
    assert "lacks the approve scope" in page.inner_text("body")
    page.goto(proc.url + "/dashboard")
    assert "/dashboard/login" in page.url


def test_pending_cards_come_and_go_without_a_reload(server, page) -> None:  # type: ignore[no-untyped-def]
    proc, record = server
    _sign_in(page, proc.url)
    _until_live(page)
    navigations: list[str] = []  # under the page's CSP no script of ours may be evaluated
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    agent = Agent(proc.url, bulk("crm_live"))
    assert agent.pending.wait(30) and agent.request_id
    card = page.locator(f"[data-request='{agent.request_id}']")
    card.wait_for(state="visible", timeout=15_000)
    assert "bulk_update" in card.inner_text()
    with httpx.Client(base_url=proc.url, headers=bearer("ops")) as c:
        c.post(f"/api/v1/approvals/{agent.request_id}/deny", json={"reason": "live test"})
    card.wait_for(state="detached", timeout=15_000)
    assert navigations == []  # no reload: the card came and went over server-sent events
    assert agent.result()["status"] == "denied"
    assert ran_on(record, "crm_live") == []


def test_an_answer_from_a_live_added_card_works(server, page) -> None:  # type: ignore[no-untyped-def]
    proc, record = server
    _sign_in(page, proc.url)
    _until_live(page)
    agent = Agent(proc.url, bulk("crm_live_approve"))
    assert agent.pending.wait(30)
    card = page.locator(f"[data-request='{agent.request_id}']")
    card.wait_for(state="visible", timeout=15_000)
    card.locator("button[value=approve]").click()  # the form came over SSE, CSRF included
    page.wait_for_url("**/dashboard?msg=*")
    assert agent.result()["status"] == "success"
    assert len(ran_on(record, "crm_live_approve")) == 1


def test_policy_page_shows_versions_and_a_diff(server, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, _ = server
    blocked = POLICY.replace("approval: block\n", "approval: approve\n", 1)  # no_deletes
    assert blocked != POLICY
    with httpx.Client(base_url=proc.url, headers=bearer("ops")) as c:  # ops has every scope
        put = c.put("/api/v1/policy", json={"yaml": blocked, "note": "from the test"})
        assert put.status_code == 200, put.text
        version = put.json()["version"]
    _sign_in(page, proc.url)
    page.goto(proc.url + "/dashboard/policy")
    assert page.inner_text("#in-force") == f"version {version}"
    row = page.locator(f"#versions tr[data-version='{version}']")
    assert "from the test" in row.inner_text() and "key:ops" in row.inner_text()
    row.locator("a", has_text="diff").click()
    page.wait_for_url(f"**/dashboard/policy?old={version - 1}&new={version}")
    diff = page.inner_text("#diff")
    assert "-    approval: block" in diff and "+    approval: approve" in diff
    assert "sampled actions change decision" in page.inner_text("#changed")
    shots = Path(os.environ.get("AEGIS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "dashboard-policy.png"), full_page=True)
    with httpx.Client(base_url=proc.url, headers=bearer("ops")) as c:  # leave it as it was
        assert c.post(f"/api/v1/policy/rollback/{version - 1}").status_code == 200


def test_playground_decides_pasted_yaml_without_storing_it(server, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, _ = server
    with httpx.Client(base_url=proc.url, headers=bearer("dev")) as c:
        before = c.get("/api/v1/policy/versions").json()["versions"]
    _sign_in(page, proc.url)
    page.goto(proc.url + "/dashboard/playground")
    assert "read_safe" in page.input_value("textarea[name=yaml]")
    pasted = "defaults: {approval: block}\nrules:\n  - name: reads_ok\n    match: {type: read}\n"
    page.fill("textarea[name=yaml]", pasted + "    approval: auto\n")
    page.fill("textarea[name=actions]", 'read:crm\nbulk_update:crm {"count": 500}')
    page.click("button[type=submit]")
    rows = page.locator("#decisions tr").all_inner_texts()
    assert "auto" in rows[1] and "reads_ok" in rows[1]
    assert "block" in rows[2]
    shots = Path(os.environ.get("AEGIS_SCREENSHOTS") or tmp_path)
    page.screenshot(path=str(shots / "dashboard-playground.png"), full_page=True)
    page.fill("textarea[name=yaml]", pasted + "    approval: sometimes\n")
    page.click("button[type=submit]")
    assert "yaml:5:" in page.inner_text("#errors")
    with httpx.Client(base_url=proc.url, headers=bearer("dev")) as c:
        assert c.get("/api/v1/policy/versions").json()["versions"] == before
        assert (
            c.post("/api/v1/evaluate", json={"action_type": "read", "target": "crm"}).json()[
                "matched_rule"
            ]
            == "read_safe"
        )
