"""Rule terms for approvals: escalation, and what `aegis validate --strict` says about them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from approval_helpers import Recorder, ScriptedChannel, policy_text

from aegis import Action, Policy, Runtime
from aegis.cli import main
from aegis.core.result import ResultStatus
from aegis.errors import PolicyError
from aegis.runtime.approval.channels import Responder
from aegis.runtime.approval.store import ApprovalRequest
from aegis.runtime.audit import AuditStore

PAY = Action("pay", "bank", params={"amount": 5000})


async def test_escalation_notifies_again_and_widens_who_may_answer(store: AuditStore) -> None:
    outcomes: list[Any] = []

    async def script(request: ApprovalRequest, responder: Responder) -> None:
        if not request.escalated:  # the CTO may not answer yet
            outcomes.append(await responder.respond(request.id, "cto", "approve"))
        else:
            outcomes.append(await responder.respond(request.id, "cto", "approve", "escalated"))

    terms = (
        '{allow: ["test:oncall"], escalate_after: 300ms, escalate_to: ["test:cto"], timeout: 20s}'
    )
    channel = ScriptedChannel(script)
    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(policy_text(approvers=terms)),
        approval_handler=channel,
        audit=store,
    ) as rt:
        result = await rt.run_one(PAY)
    assert result.ok
    assert [o.accepted for o in outcomes] == [False, True]
    assert len(channel.requests) == 2 and channel.requests[1].escalated
    (req,) = store.approvals.list(limit=None)
    assert req.escalated and req.approvers == ("test:cto",)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ('{allow: ["test:a"], escalate_after: 5m, timeout: 1m}', "shorter than timeout"),
        ('{escalate_to: ["test:b"]}', "needs an allow list"),
        ('["not an identity"]', "invalid value 'not an identity': channel:id"),
        ("{quorum: 0}", "minimum"),
    ],
)
def test_bad_terms_are_refused_at_load(terms: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_string(policy_text(approvers=terms))
    assert "approvers" in str(info.value) and message in str(info.value)


def test_terms_on_a_rule_that_does_not_ask_are_refused() -> None:
    with pytest.raises(PolicyError, match="only apply to approval: approve"):
        Policy.from_yaml_string(policy_text(approvers='["test:a"]', approval="block"))


def test_validate_strict_names_rules_anyone_may_approve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lax, tight = tmp_path / "lax.yaml", tmp_path / "tight.yaml"
    lax.write_text(policy_text())
    # --strict also reports an auto default (policy_lint), so the tight policy blocks instead
    tight.write_text(
        policy_text(approvers='["slack:U1"]').replace("approval: auto}", "approval: block}")
    )
    assert main(["validate", str(lax)]) == 0
    assert main(["validate", "--strict", str(tight)]) == 0
    capsys.readouterr()
    assert main(["validate", "--strict", str(lax)]) == 1
    out = capsys.readouterr().out
    assert "strict: rule 'big_payment'" in out and "any answer" in out


async def test_a_policy_with_no_terms_accepts_any_channel_identity(store: AuditStore) -> None:
    async def script(request: ApprovalRequest, responder: Responder) -> None:
        await responder.respond(request.id, "whoever", "approve")

    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(policy_text()),
        approval_handler=ScriptedChannel(script),
        audit=store,
    ) as rt:
        result = await rt.run_one(PAY)
    assert result.status is ResultStatus.SUCCESS


async def test_runtime_closes_the_channels_it_built_by_name(
    store: AuditStore, aegis_plugin: Any
) -> None:
    from aegis import hookimpl

    closed: list[str] = []

    class Closing(ScriptedChannel):
        name = "closing"

        async def aclose(self) -> None:
            closed.append("named")

    class Plugin:
        @hookimpl
        def aegis_register_approval_handlers(self, register: Any) -> None:
            register("closing", Closing)

    aegis_plugin(Plugin(), name="closing-channel")
    mine = Closing()
    async with Runtime(
        executor=Recorder(),
        policy=Policy.from_yaml_string(policy_text()),
        approval_handler=["closing", mine],
        audit=store,
    ):
        pass
    assert closed == ["named"]  # the one passed in as an object is the caller's to close
