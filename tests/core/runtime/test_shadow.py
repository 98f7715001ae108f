"""Shadow mode: the candidate policy is recorded beside the live one and never decides.

The attacker's tests come first: a shadow that blocks everything, one whose condition plugin
raises (an ``Exception``, and a ``BaseException`` that escapes the condition guard), one that is
slow or hangs, one that is not a policy at all. In every case the live decision stands, the
action runs exactly when the live policy allows it, and the record says what the shadow did.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import RecordingExecutor, rows

from aegis import Action, Policy, Runtime, hookimpl
from aegis.core.result import ResultStatus
from aegis.runtime.approval.handlers import AutoApprovalHandler
from aegis.runtime.audit import AuditStore
from aegis.runtime.shadow import ShadowPolicy

BLOCK_ALL = """
version: "1"
defaults: {risk_level: critical, approval: block}
rules: []
"""

ALLOW_ALL = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - name: anything_goes
    match: {type: "*"}
    risk_level: low
    approval: auto
"""


def _with_condition(name: str) -> str:
    return f"""
version: "1"
defaults: {{risk_level: medium, approval: approve}}
rules:
  - name: guarded_reads
    match: {{type: "read*"}}
    conditions: {{{name}: {{}}}}
    risk_level: critical
    approval: block
"""


class Escape(BaseException):
    """Not an ``Exception``: the policy's condition guard does not catch it."""


class HostileConditions:
    """Condition plugins that misbehave in the ways a half-finished candidate policy might."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: dict[str, int] = {}

    @hookimpl
    def aegis_register_conditions(self, register: Any) -> None:
        def make(kind: str) -> Any:
            def factory(argument: Any, cc: Any) -> Any:
                def check(action: Action, ctx: Any) -> bool | None:
                    self.calls[kind] = self.calls.get(kind, 0) + 1
                    if kind == "raises":
                        raise RuntimeError("condition exploded")
                    if kind == "escapes":
                        raise Escape("out of the condition guard")
                    if kind == "exits":
                        raise SystemExit(3)
                    if kind == "hangs":
                        self.release.wait(30)
                    if kind == "slow":
                        time.sleep(0.3)
                    return True

                return check

            return factory

        for kind in ("raises", "escapes", "exits", "hangs", "slow", "fine"):
            register(
                f"shadow_test_{kind}",
                make(kind),
                schema={"type": "object"},
                description=f"a condition that {kind}",
            )


@pytest.fixture
def hostile(aegis_plugin: Any) -> Any:
    plugin = HostileConditions()
    aegis_plugin(plugin, name="hostile-conditions")
    yield plugin
    plugin.release.set()


def _runtime(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, shadow: Any
) -> Runtime:
    return Runtime(
        executor=executor,
        policy=policy,
        approval_handler=AutoApprovalHandler(),
        audit=store,
        shadow=shadow,
        shadow_timeout=0.1,
    )


def _shadow_of(store: AuditStore) -> list[dict[str, Any] | None]:
    return [r.shadow for r in rows(store)]


READ = Action("read_contact", "crm_prod", {"id": 1})
DELETE = Action("delete_contact", "crm_prod", {"id": 1})


async def test_a_shadow_that_blocks_everything_blocks_nothing(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async with _runtime(policy, executor, store, Policy.from_yaml_string(BLOCK_ALL)) as rt:
        result = await rt.run_one(READ)
    assert result.status is ResultStatus.SUCCESS
    assert executor.ran == [rt.bind(READ)]
    (record,) = rows(store)
    assert record.decision == "auto" and record.matched_rule == "read_safe"
    assert record.shadow is not None
    assert record.shadow["approval"] == "block"
    assert record.shadow["risk_level"] == "CRITICAL"
    assert record.shadow["matched_rule"] is None


async def test_a_shadow_that_allows_everything_runs_nothing_the_live_policy_blocks(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async with _runtime(policy, executor, store, Policy.from_yaml_string(ALLOW_ALL)) as rt:
        result = await rt.run_one(DELETE)
    assert result.status is ResultStatus.BLOCKED
    assert executor.ran == []
    (record,) = rows(store)
    assert record.decision == "blocked" and record.matched_rule == "no_deletes"
    assert record.shadow == {
        "approval": "auto",
        "risk_level": "LOW",
        "matched_rule": "anything_goes",
        "policy": Policy.from_yaml_string(ALLOW_ALL).fingerprint,
    }


async def test_a_raising_condition_is_unknown_in_the_shadow_as_it_would_be_live(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, hostile: Any
) -> None:
    shadow = Policy.from_yaml_string(_with_condition("shadow_test_raises"))
    async with _runtime(policy, executor, store, shadow) as rt:
        result = await rt.run_one(READ)
    assert result.status is ResultStatus.SUCCESS and len(executor.ran) == 1
    assert hostile.calls["raises"] >= 1
    (record,) = rows(store)
    # The shadow decides as the live engine would: a raising condition is unknown, which on a
    # block rule counts as a match.
    assert record.shadow is not None
    assert record.shadow["approval"] == "block"
    assert record.shadow["unknown"] == ["shadow_test_raises"]


@pytest.mark.parametrize("kind", ["escapes", "exits"])
async def test_a_condition_raising_past_the_guard_is_a_shadow_error(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, hostile: Any, kind: str
) -> None:
    shadow = Policy.from_yaml_string(_with_condition(f"shadow_test_{kind}"))
    async with _runtime(policy, executor, store, shadow) as rt:
        ran = await rt.run_one(READ)
        blocked = await rt.run_one(DELETE)  # the rule does not match deletes: no condition runs
    assert ran.status is ResultStatus.SUCCESS and blocked.status is ResultStatus.BLOCKED
    assert len(executor.ran) == 1
    first, second = rows(store)
    assert first.decision == "auto"
    assert first.shadow is not None and first.shadow["error"].startswith("shadow error: ")
    assert ("Escape" if kind == "escapes" else "SystemExit") in first.shadow["error"]
    assert second.shadow is not None and second.shadow["approval"] == "approve"


async def test_a_slow_shadow_costs_at_most_its_timeout(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, hostile: Any
) -> None:
    shadow = Policy.from_yaml_string(_with_condition("shadow_test_slow"))
    async with _runtime(policy, executor, store, shadow) as rt:
        assert rt.shadow is not None and not rt.shadow.inline  # a plugin condition: off-thread
        result = await rt.run_one(READ)
    assert result.status is ResultStatus.SUCCESS and len(executor.ran) == 1
    (record,) = rows(store)
    assert record.shadow is not None
    assert record.shadow["error"] == (
        "shadow error: no decision within 0.1 s (the shadow policy is slow); the action went on"
    )


async def test_a_hung_shadow_never_stalls_later_actions(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, hostile: Any
) -> None:
    shadow = Policy.from_yaml_string(_with_condition("shadow_test_hangs"))
    async with _runtime(policy, executor, store, shadow) as rt:
        results = [await rt.run_one(READ) for _ in range(6)]
        results.append(await rt.run_one(DELETE))
        hostile.release.set()
    assert [r.status for r in results] == [ResultStatus.SUCCESS] * 6 + [ResultStatus.BLOCKED]
    assert len(executor.ran) == 6
    errors = [s["error"] for s in _shadow_of(store) if s is not None]
    assert len(errors) == 7
    # Both workers hang on the first two actions; the rest are skipped without waiting.
    assert errors[0].startswith("shadow error: no decision within 0.1 s")
    assert errors[1].startswith("shadow error: no decision within 0.1 s")
    assert all(
        e.startswith("shadow error: skipped: every shadow worker is still busy") for e in errors[2:]
    )


async def test_concurrent_actions_with_a_hung_shadow_all_run(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, hostile: Any
) -> None:
    shadow = Policy.from_yaml_string(_with_condition("shadow_test_hangs"))
    async with _runtime(policy, executor, store, shadow) as rt:
        results = await asyncio.gather(*(rt.run_one(READ) for _ in range(50)))
        hostile.release.set()
    assert all(r.status is ResultStatus.SUCCESS for r in results)
    assert len(executor.ran) == 50
    shadows = _shadow_of(store)
    assert len(shadows) == 50
    assert all(s is not None and s["error"].startswith("shadow error: ") for s in shadows)


@pytest.mark.parametrize(
    "bad",
    [42, "no such policy file.yaml", object(), {"rules": []}],
    ids=["int", "missing-file", "object", "dict"],
)
async def test_a_shadow_that_is_not_a_policy_is_recorded_not_raised(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, bad: object
) -> None:
    async with _runtime(policy, executor, store, bad) as rt:
        ran = await rt.run_one(READ)
        blocked = await rt.run_one(DELETE)
    assert ran.status is ResultStatus.SUCCESS and blocked.status is ResultStatus.BLOCKED
    assert len(executor.ran) == 1
    for shadow in _shadow_of(store):
        assert shadow is not None and shadow["error"].startswith("shadow error: ")
    assert rows(store)[0].decision == "auto" and rows(store)[1].decision == "blocked"


class Liar:
    """A policy source whose answers are wrong in type, raise, or block: recorded as errors."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def evaluate(self, action: Action) -> Any:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("block", "returned str, not a PolicyDecision"),
        (None, "returned NoneType, not a PolicyDecision"),
        (ValueError("candidate broken"), "ValueError: candidate broken"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
    ],
)
async def test_a_custom_shadow_source_that_misbehaves(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, answer: Any, said: str
) -> None:
    async with _runtime(policy, executor, store, Liar(answer)) as rt:
        result = await rt.run_one(READ)
    assert result.status is ResultStatus.SUCCESS and len(executor.ran) == 1
    (shadow,) = _shadow_of(store)
    assert shadow is not None and shadow["error"].startswith("shadow error: ")
    assert said in shadow["error"]


async def test_a_shadow_sees_no_secret_it_quotes(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    """An error message quoting a credential-shaped param is redacted like the params are."""
    secret = "sk-" + "a" * 40
    action = Action("read_contact", "crm_prod", {"token": secret})
    async with _runtime(policy, executor, store, Liar(ValueError(f"bad token {secret}"))) as rt:
        await rt.run_one(action)
    (record,) = rows(store)
    assert record.shadow is not None and secret not in json.dumps(record.shadow)
    assert record.shadow["error"].startswith("shadow error: ValueError: bad token ")


async def test_cancelled_while_the_shadow_decides_is_recorded_as_not_run(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, hostile: Any
) -> None:
    shadow = Policy.from_yaml_string(_with_condition("shadow_test_hangs"))
    rt = Runtime(
        executor=executor,
        policy=policy,
        approval_handler=AutoApprovalHandler(),
        audit=store,
        shadow=shadow,
        shadow_timeout=5.0,
    )
    async with rt:
        task = asyncio.create_task(rt.run_one(READ))
        while not hostile.calls.get("hangs"):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hostile.release.set()
    assert executor.ran == []
    (record,) = rows(store)
    assert record.result == "blocked"
    assert "cancelled while the shadow policy decided" in (record.reason or "")


async def test_every_kind_of_record_carries_the_shadow(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    """Executed, blocked, dry run, approved and authorised records all hold the verdict."""
    block_all = Policy.from_yaml_string(BLOCK_ALL)
    async with _runtime(policy, executor, store, block_all) as rt:
        await rt.run_one(READ)
        await rt.run_one(DELETE)
        await rt.run_one(READ, dry_run=True)
        await rt.run_one(Action("bulk_update", "crm", {"count": 500}))
        auth = await rt.authorize(READ)
        await rt.execute([DELETE, READ])  # the second step is recorded as skipped
    assert not isinstance(auth, type(None))
    records = rows(store)
    assert [r.decision for r in records] == [
        "auto",
        "blocked",
        "dry_run",
        "approved",
        "auto",
        "blocked",
        "skipped",  # a plan step never reached is labelled skipped, whatever its rule
    ]
    assert all(r.shadow is not None and r.shadow["approval"] == "block" for r in records)


async def test_update_shadow_swaps_and_removes(
    policy: Policy, executor: RecordingExecutor, store: AuditStore
) -> None:
    async with _runtime(policy, executor, store, None) as rt:
        assert rt.shadow is None
        await rt.run_one(READ)
        rt.update_shadow(Policy.from_yaml_string(BLOCK_ALL))
        await rt.run_one(READ)
        rt.update_shadow(Policy.from_yaml_string(ALLOW_ALL))
        await rt.run_one(READ)
        rt.update_shadow(None)
        await rt.run_one(READ)
    shadows = _shadow_of(store)
    assert shadows[0] is None and shadows[3] is None
    assert shadows[1] is not None and shadows[1]["approval"] == "block"
    assert shadows[2] is not None and shadows[2]["matched_rule"] == "anything_goes"
    assert store.verify().ok


async def test_a_yaml_path_is_a_shadow(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, tmp_path: Path
) -> None:
    path = tmp_path / "candidate.yaml"
    path.write_text(BLOCK_ALL)
    async with _runtime(policy, executor, store, str(path)) as rt:
        assert rt.shadow is not None and rt.shadow.inline  # built-in conditions only: inline
        await rt.run_one(READ)
    async with _runtime(policy, executor, store, path) as rt:
        await rt.run_one(READ)
    assert [s["approval"] if s else None for s in _shadow_of(store)] == ["block", "block"]


async def test_a_watcher_shadow_follows_its_file(
    policy: Policy, executor: RecordingExecutor, store: AuditStore, tmp_path: Path
) -> None:
    from aegis.runtime.watcher import PolicyWatcher

    path = tmp_path / "candidate.yaml"
    path.write_text(BLOCK_ALL)
    watcher = PolicyWatcher(path)
    async with _runtime(policy, executor, store, watcher) as rt:
        assert rt.shadow is not None and rt.shadow.inline
        await rt.run_one(READ)
        path.write_text(ALLOW_ALL + "\n# changed\n")
        assert watcher.check()
        await rt.run_one(READ)
    assert [s["approval"] if s else None for s in _shadow_of(store)] == ["block", "auto"]


def test_shadow_timeout_must_be_positive() -> None:
    for bad in (0, -1, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="shadow_timeout"):
            ShadowPolicy(Policy.from_yaml_string(BLOCK_ALL), timeout=bad)  # type: ignore[arg-type]


LIMITED = """
version: "1"
defaults: {risk_level: medium, approval: block}
rules:
  - name: too_many_reads
    match: {type: "read*"}
    conditions: {rate_limit: {max: 2, per: 1h, key: agent}}
    risk_level: high
    approval: block
  - name: reads
    match: {type: "read*"}
    risk_level: low
    approval: auto
"""


async def test_a_stateful_live_policy_still_records_the_shadow(
    executor: RecordingExecutor, store: AuditStore
) -> None:
    """The limits' write-ahead path (decided inside the transaction) carries the verdict too,
    on the records it lets run and on the one it stops."""
    live = Policy.from_yaml_string(LIMITED)
    async with _runtime(live, executor, store, Policy.from_yaml_string(BLOCK_ALL)) as rt:
        results = [await rt.run_one(READ) for _ in range(3)]
    assert [r.status for r in results] == [ResultStatus.SUCCESS] * 2 + [ResultStatus.BLOCKED]
    assert len(executor.ran) == 2
    verdicts = _shadow_of(store)
    assert len(verdicts) == 3
    assert all(v is not None and v["approval"] == "block" for v in verdicts)


async def test_a_live_condition_raising_past_the_guard_is_recorded_before_it_propagates(
    hostile: HostileConditions, executor: RecordingExecutor, store: AuditStore
) -> None:
    """Found while building shadow mode: a ``BaseException`` from a live condition used to
    leave ``run_one`` before any record was written; the action must be in the audit."""
    live = Policy.from_yaml_string(_with_condition("shadow_test_escapes"))
    async with _runtime(live, executor, store, None) as rt:
        with pytest.raises(Escape):
            await rt.run_one(READ)
    assert executor.ran == []
    (record,) = rows(store)
    assert record.decision == "blocked"
    assert "interrupted: Escape" in (record.error or record.reason or "")
