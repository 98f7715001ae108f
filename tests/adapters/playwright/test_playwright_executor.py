"""PlaywrightExecutor driving real Chromium through the runtime, against a local page."""

from __future__ import annotations

from pathlib import Path

import pytest
from aegis.adapters.playwright import PlaywrightExecutor

from aegis import Action, ApprovalDecision, ResultStatus, Runtime, plugins
from aegis.runtime.audit import AuditStore
from plugin_helpers import Human


async def out_text(browser: PlaywrightExecutor) -> str | None:
    return await browser.page.text_content("#out")


async def test_allowed_actions_run_in_the_browser_and_are_audited(
    runtime: Runtime, browser: PlaywrightExecutor, store: AuditStore, site: str, tmp_path: Path
) -> None:
    browser.screenshot_dir = tmp_path.resolve()
    shot = tmp_path / "form.png"
    results = [
        await runtime.run_one(Action("navigate", f"{site}/signup.html")),
        await runtime.run_one(Action("fill", "#name", params={"value": "Ada"})),
        await runtime.run_one(Action("select", "#plan", params={"value": "pro"})),
        await runtime.run_one(Action("click", "#preview")),
        await runtime.run_one(Action("screenshot", "page", params={"path": "form.png"})),
        await runtime.run_one(Action("screenshot", "#out")),
    ]
    assert [r.status for r in results] == [ResultStatus.SUCCESS] * 6, [r.error for r in results]
    assert results[0].data["title"] == "Signup" and results[0].data["status"] == 200
    assert results[2].data == {"selected": ["pro"]}
    assert await out_text(browser) == "preview:Ada/pro"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results[5].data["png"][:4] == b"\x89PNG"
    recs = store.query(limit=None)
    assert [(r.action_type, r.target, r.result) for r in recs] == [
        ("navigate", f"{site}/signup.html", "success"),
        ("fill", "#name", "success"),
        ("select", "#plan", "success"),
        ("click", "#preview", "success"),
        ("screenshot", "page", "success"),
        ("screenshot", "#out", "success"),
    ]
    assert {(r.agent_id, r.session_id) for r in recs} == {("browser-bot", "sess-b")}


async def test_blocked_evaluate_never_runs_script(
    runtime: Runtime, browser: PlaywrightExecutor, store: AuditStore, site: str
) -> None:
    await runtime.run_one(Action("navigate", f"{site}/signup.html"))
    script = "() => { document.title = 'pwned'; return 1 }"
    result = await runtime.run_one(Action("evaluate", "page", params={"expression": script}))
    assert result.status is ResultStatus.BLOCKED
    assert await browser.page.title() == "Signup"
    assert store.query(limit=None)[-1].matched_rule == "no_js"


async def test_evaluate_runs_when_the_policy_allows_it(
    browser: PlaywrightExecutor, store: AuditStore, site: str
) -> None:
    from aegis import Policy
    from aegis.runtime.approval.handlers import AutoApprovalHandler

    policy = Policy.from_yaml_string(
        'version: "1"\ndefaults: {risk_level: low, approval: auto}\nrules: []\n', source="p.yaml"
    )
    async with Runtime(
        executor=browser, policy=policy, approval_handler=AutoApprovalHandler(), audit=store
    ) as rt:
        await rt.run_one(Action("navigate", f"{site}/signup.html"))
        on_page = await rt.run_one(
            Action("evaluate", "page", params={"expression": "(n) => n * 2", "arg": 21})
        )
        on_node = await rt.run_one(
            Action("evaluate", "#out", params={"expression": "(el) => el.textContent"})
        )
        near_name = await rt.run_one(
            Action("Evaluate", "page", params={"expression": "() => document.title = 'x'"})
        )
        title = await browser.page.title()
    assert on_page.data == {"value": 42} and on_node.data == {"value": "nothing yet"}
    assert near_name.status is ResultStatus.FAILED and title == "Signup"


async def test_denied_click_never_reaches_the_page(
    runtime: Runtime, browser: PlaywrightExecutor, human: Human, store: AuditStore, site: str
) -> None:
    await runtime.run_one(Action("navigate", f"{site}/signup.html"))
    human.answer = ApprovalDecision.deny(approver="ana", reason="not on a Friday")
    result = await runtime.run_one(Action("click", "#submit"))
    assert result.status is ResultStatus.DENIED and "not on a Friday" in (result.reason or "")
    assert await out_text(browser) == "nothing yet"
    assert [a.target for a in human.asked] == ["#submit"]
    human.answer = ApprovalDecision.approve(approver="ana")
    assert (await runtime.run_one(Action("click", "#submit"))).ok
    assert await out_text(browser) == "submitted"
    assert [r.result for r in store.query(limit=None)] == ["success", "denied", "success"]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:document.title='pwned'",
        "JavaScript:document.title='pwned'",
        "data:text/html,<script>document.title='pwned'</script>",
        "file:///etc/passwd",
    ],
)
async def test_navigate_cannot_smuggle_script_or_leave_the_web(
    runtime: Runtime, browser: PlaywrightExecutor, store: AuditStore, site: str, url: str
) -> None:
    await runtime.run_one(Action("navigate", f"{site}/signup.html"))
    result = await runtime.run_one(Action("navigate", url))
    assert result.status is ResultStatus.FAILED and "navigate refuses" in (result.error or "")
    assert await browser.page.title() == "Signup" and browser.page.url.endswith("signup.html")
    assert store.query(limit=None)[-1].result == "failed"


async def test_failures_are_failed_and_audited(
    runtime: Runtime, store: AuditStore, site: str
) -> None:
    missing = await runtime.run_one(Action("navigate", f"{site}/nope.html"))
    assert missing.status is ResultStatus.FAILED and "HTTP 404" in (missing.error or "")
    await runtime.run_one(Action("navigate", f"{site}/signup.html"))
    no_such = await runtime.run_one(Action("click", "#does-not-exist"))
    assert no_such.status is ResultStatus.FAILED and "Timeout" in (no_such.error or "")
    no_value = await runtime.run_one(Action("fill", "#name"))
    assert no_value.status is ResultStatus.FAILED and "params.value" in (no_value.error or "")
    unknown = await runtime.run_one(Action("Evaluate", "page", params={"expression": "1"}))
    assert unknown.status is ResultStatus.BLOCKED  # the policy matches case-insensitively
    odd = await runtime.run_one(Action("hover", "#name"))
    assert odd.status is ResultStatus.FAILED and "unknown browser action" in (odd.error or "")
    assert [r.result for r in store.query(limit=None)] == [
        "failed", "success", "failed", "failed", "blocked", "failed"
    ]  # fmt: skip


async def test_browser_closes_with_the_runtime(
    browser: PlaywrightExecutor, runtime: Runtime, site: str
) -> None:
    assert (await runtime.run_one(Action("navigate", f"{site}/signup.html"))).ok
    await runtime.close()
    with pytest.raises(RuntimeError, match="not started"):
        _ = browser.page


def test_registered_as_the_playwright_executor() -> None:
    registration = plugins.get_registry().get("executors", "playwright")
    assert registration is not None and registration.obj is PlaywrightExecutor


@pytest.mark.parametrize("path", ["../escape.png", "/tmp/elsewhere.png", "sub/../../up.png"])
async def test_screenshots_cannot_be_written_outside_their_directory(
    runtime: Runtime, browser: PlaywrightExecutor, site: str, tmp_path: Path, path: str
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    browser.screenshot_dir = shots.resolve()
    await runtime.run_one(Action("navigate", f"{site}/signup.html"))
    result = await runtime.run_one(Action("screenshot", "page", params={"path": path}))
    assert result.status is ResultStatus.FAILED and "leaves" in (result.error or "")
    assert not list(tmp_path.rglob("*.png"))


async def test_no_screenshot_file_without_a_configured_directory(
    runtime: Runtime, site: str, tmp_path: Path
) -> None:
    await runtime.run_one(Action("navigate", f"{site}/signup.html"))
    target = tmp_path / "x.png"
    result = await runtime.run_one(Action("screenshot", "page", params={"path": str(target)}))
    assert result.status is ResultStatus.FAILED and "screenshot_dir" in (result.error or "")
    assert not target.exists()
    assert (await runtime.run_one(Action("screenshot", "page"))).data["png"][:4] == b"\x89PNG"
