"""The ``auto`` handler's request and answer are written in the transaction of the action's own
audit record: one commit holds the request, its answer and the record that seals them. The
answer is kept in the request row (``answer``), not as an answer row, unless earlier answers
are sealed with it (a reopened request) or the store lacks that column.

The attacker breaks that transaction at each of its statements, or tampers with the rows it
wrote. Each test fails if the action ran without its request stored, if a request, an answer
or a record was left half-written, or if ``verify`` missed a tampered answer. On SQLite and
(``-m postgres``) on a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from approval_helpers import PAY_POLICY, Recorder
from sqlalchemy import create_engine, text

from aegis import Action, Policy, Runtime
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval, RiskLevel
from aegis.errors import AuditError
from aegis.runtime import limit_state
from aegis.runtime.approval import flow
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Authorization
from aegis.runtime.hooks import RuntimeHooks

#: These tests are about the request row an ``auto`` approval has when it is not folded.
pytestmark = pytest.mark.usefixtures("request_rows")

PAY = Action("pay", "bank", params={"amount": 5000, "to": "acct-1"})


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    """One statement straight on the database, as another process (or the attacker) runs it."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            found = conn.execute(text(statement), params)
            return list(found) if found.returns_rows else [found.rowcount]
    finally:
        engine.dispose()


def refuse_inserts(url: str, table: str, when: str = "") -> None:
    """Sabotage: every insert into ``table`` (matching ``when``, on NEW) fails."""
    if url.startswith("sqlite"):
        cond = f" WHEN {when}" if when else ""
        sql(
            url,
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}{cond} "
            "BEGIN SELECT RAISE(ABORT, 'inserts refused'); END",
        )
        return
    sql(
        url,
        "CREATE OR REPLACE FUNCTION refuse_insert() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'inserts refused'; END $$ LANGUAGE plpgsql",
    )
    cond = f" WHEN ({when})" if when else ""
    sql(
        url,
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW{cond} "
        "EXECUTE FUNCTION refuse_insert()",
    )


def allow_inserts(url: str, table: str) -> None:
    suffix = "" if url.startswith("sqlite") else f" ON {table}"
    sql(url, f"DROP TRIGGER refuse_{table}{suffix}")


def requests_of(url: str) -> list[tuple[Any, ...]]:
    return sql(url, "SELECT id, state, audit_id FROM aegis_approval_request ORDER BY created_at")


def answer_count(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM aegis_approval_answer")[0][0])


def held_answers(url: str) -> list[Any]:
    """The answers request rows hold (``answer``), decoded, oldest request first."""
    rows = sql(url, "SELECT answer FROM aegis_approval_request ORDER BY created_at")
    return [None if a is None else json.loads(a) for (a,) in rows]


def pending_records(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM aegis_audit WHERE result = 'pending'")[0][0])


def verify(url: str) -> Any:
    return AuditStore(url).verify()


def runtime(url: str, executor: Recorder, policy: str = PAY_POLICY, **kw: Any) -> Runtime:
    return Runtime(
        executor=executor,
        policy=Policy.from_yaml_string(policy),
        approval_handler="auto",
        audit=url,
        **kw,
    )


async def test_the_request_is_linked_to_its_record_in_the_same_commit(url: str) -> None:
    executor = Recorder()
    async with runtime(url, executor) as rt:
        result = await rt.run_one(PAY)
        # Read at once from another connection: nothing is left for a later write.
        ((rid, state, audit_id),) = requests_of(url)
        sealed = sql(url, "SELECT approval_request FROM aegis_audit WHERE id = :i", i=audit_id)
    assert result.ok and len(executor.ran) == 1
    assert (state, audit_id) == ("approved", result.audit_id)
    assert sealed == [(rid,)] and answer_count(url) == 0  # the answer is in the request row
    ((at, channel, responder, verdict, reason, accepted, note),) = held_answers(url)
    assert (channel, responder, verdict, accepted) == ("auto", "auto:auto", "approve", 1)
    assert isinstance(at, float) and reason == "auto-approval handler" and note
    assert result.approval is not None and result.approval.request_id == rid
    assert result.approval.answers_seal is not None
    assert result.approval.answers_seal.startswith("inline:")
    report = verify(url)
    assert report.ok and report.unchained_answers == 0


async def test_a_refused_row_leaves_nothing_half_written_and_nothing_runs(url: str) -> None:
    table = "aegis_approval_request"  # the row that holds the answer too
    executor = Recorder()
    async with runtime(url, executor) as rt:
        assert (await rt.run_one(PAY)).ok
        refuse_inserts(url, table)
        result = await rt.run_one(PAY)
        assert result.status is ResultStatus.BLOCKED and len(executor.ran) == 1
        assert "could not be stored" in (result.reason or "")
        assert "inserts refused" in (result.reason or "")
        assert len(requests_of(url)) == 1 and len(held_answers(url)) == 1  # the first action's
        assert answer_count(url) == 0 and pending_records(url) == 0
        allow_inserts(url, table)
        assert (await rt.run_one(PAY)).ok  # and it recovers
    assert len(executor.ran) == 2 and len(requests_of(url)) == 2
    async with AuditStore(url) as store:
        assert store.count() == 3 and store.count(result="blocked") == 1
        (blocked,) = store.query(result="blocked")
        assert blocked.approval_request is None  # it names no request that does not exist
    assert verify(url).ok and verify(url).unchained_answers == 0


async def test_an_auto_approval_writes_no_answer_row(url: str) -> None:
    """The answer table refusing every insert does not touch an auto approval: its answer is
    in the request row. A refused auto answer (not approving) is still an answer row, and
    with that table refusing it, nothing of it is left and nothing runs."""
    executor = Recorder()
    async with runtime(url, executor) as rt:
        assert (await rt.run_one(PAY)).ok  # creates the tables
        refuse_inserts(url, "aegis_approval_answer")
        assert (await rt.run_one(PAY)).ok
    assert len(executor.ran) == 2 and answer_count(url) == 0
    assert [a[2] for a in held_answers(url)] == ["auto:auto", "auto:auto"]
    refused = Recorder()
    quorum = PAY_POLICY.replace(
        "approval: approve", "approval: approve\n    approvers: {quorum: 2}"
    )
    async with runtime(url, refused, quorum) as rt:
        result = await rt.run_one(PAY)
    assert refused.ran == [] and result.status is not ResultStatus.SUCCESS
    assert len(requests_of(url)) == 2 and answer_count(url) == 0
    allow_inserts(url, "aegis_approval_answer")
    report = verify(url)
    assert report.ok and report.unchained_answers == 0


async def test_an_intent_that_cannot_be_written_takes_its_request_with_it(url: str) -> None:
    """The request and answer are written first in the transaction; the record after them
    fails: all three are rolled back, and the stop is recorded on its own."""
    executor = Recorder()
    async with runtime(url, executor) as rt:
        assert (await rt.run_one(PAY)).ok
        refuse_inserts(url, "aegis_audit", "NEW.result = 'pending'")
        result = await rt.run_one(PAY)
        assert result.status is ResultStatus.BLOCKED and len(executor.ran) == 1
        assert "inserts refused" in (result.reason or "")
        assert len(requests_of(url)) == 1 and len(held_answers(url)) == 1
        assert answer_count(url) == 0
        allow_inserts(url, "aegis_audit")
    assert verify(url).ok and verify(url).unchained_answers == 0


async def test_when_no_record_can_be_written_the_action_does_not_run(url: str) -> None:
    executor = Recorder()
    async with runtime(url, executor) as rt:
        assert (await rt.run_one(PAY)).ok
        refuse_inserts(url, "aegis_audit")
        with pytest.raises(AuditError, match="inserts refused"):
            await rt.run_one(PAY)
        assert len(executor.ran) == 1
        assert len(requests_of(url)) == 1 and answer_count(url) == 0
        allow_inserts(url, "aegis_audit")


async def test_concurrent_auto_approvals_each_keep_their_own_rows(url: str) -> None:
    """Many actions share one writer transaction; one of them cannot store its request, so
    the batch is rolled back and written op by op: the others keep their rows, exactly once."""
    executor = Recorder()
    actions = [Action("pay", "bad" if i == 7 else f"bank-{i}", params={"n": i}) for i in range(30)]
    async with runtime(url, executor) as rt:
        assert (await rt.run_one(PAY)).ok  # creates the tables
        refuse_inserts(url, "aegis_approval_request", "NEW.target = 'bad'")
        results = await asyncio.gather(*(rt.run_one(a) for a in actions))
    assert [r.ok for r in results] == [i != 7 for i in range(30)]
    assert sorted(a.target for a in executor.ran) == sorted(
        ["bank", *(f"bank-{i}" for i in range(30) if i != 7)]
    )
    found = requests_of(url)
    assert len(found) == 30 and answer_count(url) == 0
    assert all(a is not None and a[2] == "auto:auto" for a in held_answers(url))
    audit_ids = {audit_id for _rid, _state, audit_id in found}
    assert audit_ids == {r.audit_id for r in results if r.ok} | {found[0][2]}
    assert all(state == "approved" for _rid, state, _aid in found)
    report = verify(url)
    assert report.ok and report.unchained_answers == 0 and not report.pending


@pytest.mark.parametrize(
    "tamper",
    [
        "DELETE FROM aegis_approval_request WHERE id = :rid",
        "UPDATE aegis_approval_request SET answer = NULL WHERE id = :rid",
        "UPDATE aegis_approval_request SET answer = replace(answer, 'auto:auto', 'slack:mallory') "
        "WHERE id = :rid",
        "UPDATE aegis_approval_request SET answer = replace(answer, ',1,', ',0,') WHERE id = :rid",
        "UPDATE aegis_approval_request SET answer = '[' || substr(answer, 3) WHERE id = :rid",
        "UPDATE aegis_approval_request SET answer = (SELECT answer FROM aegis_approval_request "
        "WHERE id <> :rid LIMIT 1) WHERE id = :rid",  # another request's (valid) answer
        "UPDATE aegis_approval_request SET id = 'x' WHERE id = :rid",
    ],
)
async def test_tampering_with_a_row_written_with_its_record_is_caught(
    url: str, tamper: str
) -> None:
    executor = Recorder()
    async with runtime(url, executor) as rt:
        results = [await rt.run_one(PAY) for _ in range(3)]
    assert verify(url).ok
    ((rid,),) = sql(
        url, "SELECT approval_request FROM aegis_audit WHERE id = :i", i=results[1].audit_id
    )
    sql(url, tamper, rid=rid)
    assert verify(url).ids_of("approval_answers") == [results[1].audit_id]


def _evaluate_again(*args: object) -> None:
    """``flow.still_decided`` that never reuses the decision: these tests replace what the
    re-check's evaluation answers, so it must run."""
    return None


def _blocking(action: Action) -> PolicyDecision:
    return PolicyDecision(action, RiskLevel.CRITICAL, Approval.BLOCK, "late-block", reason="no")


async def test_a_block_on_the_recheck_records_the_stop_with_the_request(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def blocks_now(runtime: Runtime, action: Action) -> PolicyDecision:
        return _blocking(action)

    monkeypatch.setattr(flow.limit_state, "decide", blocks_now)
    monkeypatch.setattr(flow, "still_decided", _evaluate_again)
    executor = Recorder()
    async with runtime(url, executor) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED
    ((rid, state, audit_id),) = requests_of(url)
    assert state == "approved" and audit_id == result.audit_id
    async with AuditStore(url) as store:
        record = store.get(result.audit_id)  # type: ignore[arg-type]
    assert record is not None and record.approval_request == rid
    assert record.approval_answers is not None and answer_count(url) == 0
    assert verify(url).ok and verify(url).unchained_answers == 0
    sql(url, "UPDATE aegis_approval_request SET answer = NULL")
    assert verify(url).ids_of("approval_answers") == [result.audit_id]


async def test_a_failing_before_execute_hook_records_the_stop_with_the_request(url: str) -> None:
    def refuse(action: Action, decision: PolicyDecision) -> None:
        raise RuntimeError("change freeze")

    executor = Recorder()
    async with runtime(url, executor, hooks=RuntimeHooks(before_execute=refuse)) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED
    ((_rid, state, audit_id),) = requests_of(url)
    assert state == "approved" and audit_id == result.audit_id and answer_count(url) == 0
    assert verify(url).ok and verify(url).unchained_answers == 0


STATEFUL = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - name: pay-rate
    match: {type: pay}
    conditions: {rate_limit: {max: 5, per: 1h}}
    risk_level: critical
    approval: block
  - name: big_payment
    match: {type: pay}
    risk_level: high
    approval: approve
"""


async def test_a_counted_intent_carries_its_request_and_answer(url: str) -> None:
    executor = Recorder()
    async with runtime(url, executor, STATEFUL) as rt:
        results = await asyncio.gather(*(rt.run_one(PAY) for _ in range(12)))
        linked = {audit_id for _rid, _state, audit_id in requests_of(url)}
    assert len(executor.ran) == 5 and sum(r.ok for r in results) == 5
    assert None not in linked  # every request stored names the record of its action
    assert {r.audit_id for r in results if r.ok} <= linked
    report = verify(url)
    assert report.ok and report.unchained_answers == 0 and not report.pending


async def test_a_refusal_in_the_counted_transaction_moves_the_rows_to_the_stop(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final decision (in the write) refuses: the answer written before it is taken back
    in that transaction, and written again with the record of the stop."""
    monkeypatch.setattr(limit_state, "settle", lambda *_a: "a limit was reached (test)")
    executor = Recorder()
    async with runtime(url, executor, STATEFUL) as rt:
        result = await rt.run_one(PAY)
    assert executor.ran == [] and result.status is ResultStatus.BLOCKED
    assert "a limit was reached (test)" in (result.reason or "")
    ((rid, _state, audit_id),) = requests_of(url)
    assert audit_id == result.audit_id and answer_count(url) == 0  # none left behind
    assert held_answers(url)[0][2] == "auto:auto"
    assert verify(url).ok and verify(url).unchained_answers == 0
    async with AuditStore(url) as store:
        assert store.count() == 1
        record = store.get(result.audit_id)  # type: ignore[arg-type]
    assert record is not None and record.approval_request == rid


async def test_a_reopened_auto_request_is_stored_and_both_are_sealed(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first auto approval the policy asks for more (critical risk): the first
    request is stored and superseded, the second (made under critical) is written with the
    record, and the record seals the answers of both."""
    real = flow.limit_state.decide
    rounds: list[int] = []

    async def stricter_once(runtime: Runtime, action: Action) -> PolicyDecision:
        decision = await real(runtime, action)
        rounds.append(1)
        return PolicyDecision(  # every re-check: critical, above the high risk first asked
            action,
            RiskLevel.CRITICAL,
            Approval.APPROVE,
            decision.matched_rule,
            policy_fingerprint=decision.policy_fingerprint,
        )

    monkeypatch.setattr(flow.limit_state, "decide", stricter_once)
    monkeypatch.setattr(flow, "still_decided", _evaluate_again)
    executor = Recorder()
    async with runtime(url, executor) as rt:
        result = await rt.run_one(PAY)
    assert result.ok and len(executor.ran) == 1 and len(rounds) == 2
    (first, _s1, first_audit), (_second, s2, second_audit) = requests_of(url)
    assert sql(url, "SELECT state FROM aegis_approval_request WHERE id = :r", r=first) == [
        ("superseded",)
    ]
    assert (s2, second_audit) == ("approved", result.audit_id) and first_audit is None
    assert answer_count(url) == 2 and held_answers(url) == [None, None]  # sealed together
    assert verify(url).ok and verify(url).unchained_answers == 0
    sql(url, "DELETE FROM aegis_approval_answer WHERE request_id = :r", r=first)
    assert verify(url).ids_of("approval_answers") == [result.audit_id]


@pytest.mark.parametrize(
    ("table", "when"),
    [("aegis_approval_request", ""), ("aegis_audit", "NEW.result = 'pending'")],
)
async def test_authorize_records_the_stop_when_its_request_cannot_be_stored(
    url: str, table: str, when: str
) -> None:
    """``authorize`` (the server's and the hooks' path) ends a failed combined write as
    ``run_one`` does: a recorded stop, not an exception that leaves no record."""
    executor = Recorder()
    async with runtime(url, executor) as rt:
        refuse_inserts(url, table, when)
        out = await rt.authorize(PAY)
        assert isinstance(out, Result) and out.status is ResultStatus.BLOCKED
        assert "could not be stored" in (out.reason or "")
        assert requests_of(url) == [] and answer_count(url) == 0 and pending_records(url) == 0
        allow_inserts(url, table)
        granted = await rt.authorize(PAY)
        assert isinstance(granted, Authorization)  # the caller acts now
    assert executor.ran == []
    async with AuditStore(url) as store:
        assert store.count(result="blocked") == 1 and store.count(result="pending") == 1


async def test_the_caller_gets_a_plain_approval_with_the_recorded_seal(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the record holding the rows is committed, ``Result.approval`` and
    ``Authorization.approval`` are plain ``ApprovalDecision`` values carrying the seal that
    record holds; the rows the write carried stay inside (not in ``attrs.asdict``)."""
    import attrs

    from aegis.core.approval import ApprovalDecision

    executor = Recorder()
    async with runtime(url, executor) as rt:
        ran = await rt.run_one(PAY)
        granted = await rt.authorize(PAY)
        monkeypatch.setattr(flow.limit_state, "decide", _blocked_now)
        monkeypatch.setattr(flow, "still_decided", _evaluate_again)
        stopped = await rt.run_one(PAY)
    assert isinstance(granted, Authorization)
    assert ran.ok and stopped.status is ResultStatus.BLOCKED
    async with AuditStore(url) as store:
        for approval, audit_id in (
            (ran.approval, ran.audit_id),
            (granted.approval, granted.audit_id),
            (stopped.approval, stopped.audit_id),
        ):
            assert type(approval) is ApprovalDecision and approval.approved
            assert "alongside" not in attrs.asdict(approval)
            record = store.get(audit_id)  # type: ignore[arg-type]
            assert record is not None and record.approval_request == approval.request_id
            assert approval.answers_seal is not None
            assert approval.answers_seal == record.approval_answers
            assert approval == ApprovalDecision(
                True,
                approver="auto",
                reason="auto-approval handler",
                handler="auto",
                request_id=approval.request_id,
                approvers=("auto:auto",),
            )
    assert verify(url).ok


async def _blocked_now(runtime: Runtime, action: Action) -> PolicyDecision:
    return _blocking(action)


async def test_the_record_stores_the_redaction_its_request_was_written_from(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auto-approved action's params are redacted once, for its request row, and the record
    stores that same view: both hide the secret, and the redactor walks the params once."""
    from aegis.core.redact import Redactor

    walked: list[Any] = []
    real_redact = Redactor.redact

    def counting(self: Redactor, value: Any) -> Any:
        walked.append(value)
        return real_redact(self, value)

    monkeypatch.setattr(Redactor, "redact", counting)
    secret = Action("pay", "bank", params={"amount": 5000, "to": "acct-1", "api_key": "sk-1"})
    executor = Recorder()
    async with runtime(url, executor) as rt:
        result = await rt.run_one(secret)
    assert result.ok and executor.ran
    assert sum(1 for v in walked if v is secret.params) == 1
    ((stored,),) = sql(url, "SELECT params FROM aegis_approval_request")
    async with AuditStore(url) as store:
        record = store.get(result.audit_id)  # type: ignore[arg-type]
    assert record is not None
    expected = {"amount": 5000, "to": "acct-1", "api_key": "[REDACTED]"}
    assert record.params == expected and json.loads(stored) == expected
    assert verify(url).ok


def _auto_planned(*, inline: bool) -> Any:
    """The rows of an ``auto`` approval of PAY, judged and not written (``alongside.plan``)."""
    from aegis.runtime.approval.alongside import plan

    decision = Policy.from_yaml_string(PAY_POLICY).evaluate(PAY)
    planned = plan(
        PAY,
        decision,
        window=60.0,
        channel="auto",
        params_view=dict(PAY.params),
        responder="auto",
        verdict="approve",
        reason=None,
        replaces=None,
        inline=inline,
    )
    assert planned.approves and planned.approvers == ("auto:auto",)
    return planned


def test_a_shared_redaction_is_only_used_for_the_same_params_and_redactor() -> None:
    from aegis.core.redact import Redactor

    rows = _auto_planned(inline=True)
    redactor, other = Redactor(), Redactor(extra_keys=("to",))
    view = redactor.redact(PAY.params)
    assert rows.redacted_params(PAY.params, redactor) is None  # nothing shared yet
    rows.share(PAY.params, redactor, view)
    assert rows.redacted_params(PAY.params, redactor) is view
    assert rows.redacted_params(dict(PAY.params), redactor) is None  # equal, not the same
    assert rows.redacted_params(PAY.params, other) is None  # another redactor's view differs


def test_a_plain_op_never_carries_an_answer_it_has_not_sealed() -> None:
    """An answer that is an answer row is sealed inside the transaction (its id comes from
    the database): attaching it to a record already built, which could seal nothing, fails
    before anything is submitted."""
    from aegis.runtime.audit.ops import INTENT, WriteOp

    row_kept = _auto_planned(inline=False)
    assert not row_kept.seal_ahead() and row_kept.seal is None
    with pytest.raises(AuditError, match="sealed before its record"):
        row_kept.attach(WriteOp(INTENT, ()))
    inline = _auto_planned(inline=True)
    assert inline.seal_ahead() and (inline.seal or "").startswith("inline:")
    op = WriteOp(INTENT, ())
    inline.attach(op)
    assert op.payload == () and op.side is not None  # the record as built, plus its request
