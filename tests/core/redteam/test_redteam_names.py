"""Look-alike names: no spelling of a blocked name gets past the rule it imitates.

Each spelling from the hardening issue is tried two ways: against ``Action`` (rejected with an
``ActionError`` naming the field) and, when it is accepted, through a real ``Runtime`` whose
executor *normalises* names the way real tools do (NFKC, case folding, stripping invisible
characters and whitespace) — it must never be asked to run a blocked name.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from redteam_helpers import Recorder

from aegis import Action, ActionError, Approval, Policy, Runtime
from aegis.core.result import ResultStatus
from aegis.runtime.approval.handlers import CallbackApprovalHandler
from aegis.runtime.audit import AuditStore

POLICY = """
version: "1"
defaults: {risk_level: low, approval: auto}
rules:
  - {name: no_deletes, match: {type: "delete*"}, risk_level: critical, approval: block}
  - {name: no_drops, match: {type: drop_table}, risk_level: critical, approval: block}
  - {name: no_prod, match: {target: "prod*"}, risk_level: high, approval: block}
  - {name: users_ok, match: {type: "*_user"}, risk_level: low, approval: auto}
"""

BLOCKED = {"delete_user", "drop_table"}

#: (type, target) as the issue lists them; every one ran past a block rule before.
SPELLINGS: list[tuple[str, str]] = [
    ("del\u200bete_user", "crm"),  # zero-width space
    ("\uff44\uff45\uff4c\uff45\uff54\uff45_user", "crm"),  # fullwidth
    (" delete_user", "crm"),
    ("\x00delete_user", "crm"),
    ("del\u00adete_user", "crm"),  # soft hyphen
    ("drop_table ", "db"),
    ("drop_table\x00", "db"),
    ("read_user", "\uff50\uff52\uff4f\uff44"),  # fullwidth target "prod"
    ("d\u0435lete_user", "crm"),  # Cyrillic ie
    ("DELETE_USER", "crm"),
    ("\u1d05elete_user", "crm"),  # Latin small capital D
    ("delete\ufe0f_user", "crm"),  # variation selector
    ("del\u2060ete_user", "crm"),  # word joiner
    ("delete_user\u2028", "crm"),  # line separator
    ("de\u0301lete_user", "crm"),  # a stray combining accent
    ("\u212aill", "prod"),  # Kelvin sign K, on a blocked target
]


def normalise(name: str) -> str:
    """What a lenient executor might do with a name before acting on it."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(c for c in text if unicodedata.category(c)[0] not in "CZM" or c == " ")
    return text.strip()


def deny(action: Action, decision: Any) -> bool:
    return False


@pytest.mark.parametrize(("type_", "target"), SPELLINGS)
async def test_no_spelling_of_a_blocked_name_reaches_an_executor(
    type_: str, target: str, store: AuditStore
) -> None:
    policy = Policy.from_yaml_string(POLICY)
    try:
        action = Action(type_, target)
    except ActionError as exc:
        assert "Action.type" in str(exc) or "Action.target" in str(exc)
        return
    executor = Recorder()
    async with Runtime(
        executor=executor,
        policy=policy,
        audit=store,
        approval_handler=CallbackApprovalHandler(deny),
    ) as rt:
        result = await rt.run_one(action)
    ran = [(normalise(a.type), normalise(a.target)) for a in executor.ran]
    assert not [r for r in ran if r[0] in BLOCKED or r[1].startswith("prod")], (
        f"{type_!r} on {target!r} ran: {result.status} ({result.error})"
    )
    assert result.status is not ResultStatus.SUCCESS


@pytest.mark.parametrize(
    ("value", "position"),
    [
        ("del\u200bete_user", 3),
        ("\x00delete_user", 0),
        ("del\u00adete_user", 3),
        ("drop_table\x00", 10),
        ("a\ufe0fb", 1),
        ("a\u3164b", 1),  # Hangul filler: a letter that prints nothing
    ],
)
def test_invisible_and_control_characters_are_rejected_naming_the_field(
    value: str, position: int
) -> None:
    for field in ("type", "target", "agent_id", "session_id"):
        kwargs: dict[str, Any] = {"type": "read", "target": "crm", field: value}
        with pytest.raises(ActionError, match=rf"Action\.{field} .* at position {position}"):
            Action(**kwargs)


@pytest.mark.parametrize("value", [" delete_user", "drop_table ", "\tx", "x\u3000", "\u00a0x"])
def test_surrounding_whitespace_is_rejected(value: str) -> None:
    with pytest.raises(ActionError, match="leading or trailing whitespace"):
        Action(value, "crm")
    with pytest.raises(ValueError):  # ActionError is a ValueError for older callers
        Action("read", value)


def test_fullwidth_and_case_variants_meet_the_glob() -> None:
    policy = Policy.from_yaml_string(POLICY)
    for type_ in ("\uff44\uff45\uff4c\uff45\uff54\uff45_user", "DELETE_user", "\uff24ELETE"):
        decision = policy.evaluate(Action(type_, "crm"))
        assert (decision.matched_rule, decision.approval) == ("no_deletes", Approval.BLOCK)
    fullwidth_target = policy.evaluate(Action("read", "\uff30\uff52\uff4f\uff44_eu"))
    assert fullwidth_target.matched_rule == "no_prod"


def test_case_sensitive_policy_still_normalises_compatibility_forms() -> None:
    policy = Policy.from_yaml_string(
        "case_sensitive: true\ndefaults: {approval: auto}\n"
        "rules:\n  - {name: d, match: {type: 'delete*'}, approval: block}\n"
    )
    assert policy.evaluate(Action("\uff44elete_x", "t")).approval is Approval.BLOCK
    assert policy.evaluate(Action("Delete_x", "t")).approval is Approval.AUTO  # as asked


def test_a_look_alike_of_a_blocked_name_is_blocked_and_flagged() -> None:
    policy = Policy.from_yaml_string(POLICY)
    for type_ in ("d\u0435lete_user", "delete_\u0443ser", "\u0501\u0435l\u0435t\u0435_x"):
        decision = policy.evaluate(Action(type_, "crm"))  # Cyrillic ie, u, komi de
        assert (decision.matched_rule, decision.approval) == ("no_deletes", Approval.BLOCK)
    assert "CYRILLIC" in decision.flags[0] and "LATIN" in decision.flags[0]
    assert decision.reason.startswith("flagged: type mixes scripts")  # the audit's reason


def test_an_accent_an_executor_might_strip_does_not_dodge_a_block_rule() -> None:
    policy = Policy.from_yaml_string(POLICY)
    for type_ in ("d\u00e9lete_user", "dr\u00f6p_table", "\u1d05elete_user"):
        assert policy.evaluate(Action(type_, "crm")).approval is Approval.BLOCK


def test_whole_script_look_alike_is_caught_by_the_skeleton() -> None:
    policy = Policy.from_yaml_string(
        "defaults: {approval: auto}\n"
        "rules:\n  - {name: x, match: {type: 'exec*'}, approval: block}\n"
    )
    decision = policy.evaluate(Action("\u0435\u0445\u0435\u0441", "sh"))  # "exec", Cyrillic
    assert (decision.matched_rule, decision.approval) == ("x", Approval.BLOCK)


def test_mixed_script_name_is_flagged_and_never_auto() -> None:
    policy = Policy.from_yaml_string(POLICY)
    decision = policy.evaluate(Action("r\u0435ad_user", "crm"))  # Cyrillic ie; no block rule
    assert decision.approval is Approval.APPROVE
    assert decision.flags and "CYRILLIC" in decision.flags[0]
    assert "users_ok" in decision.reason and "skipped" in decision.reason
    agent = policy.evaluate(Action("read", "crm", agent_id="b\u043ebby"))  # Cyrillic o
    assert agent.approval is Approval.APPROVE and "agent_id" in agent.flags[0]


def test_a_skeleton_never_makes_an_auto_rule_match() -> None:
    policy = Policy.from_yaml_string(
        "defaults: {approval: block}\n"
        "rules:\n  - {name: ok, match: {type: 'read*'}, approval: auto}\n"
    )
    decision = policy.evaluate(Action("r\u00e9ad", "crm"))  # "réad" is not "read"
    assert (decision.matched_rule, decision.approval) == (None, Approval.BLOCK)


@pytest.mark.parametrize(
    "name",
    [
        "\u0443\u0434\u0430\u043b\u0438\u0442\u044c",  # all Cyrillic
        "\u524a\u9664_\u30e6\u30fc\u30b6\u30fc",  # Han + Katakana
        "delete_\u30e6\u30fc\u30b6\u30fc",  # Latin + Katakana (Japanese writing)
        "caf\u00e9",  # é composes under NFKC
        "\u0928\u092e\u0938\u094d\u0924\u0947",  # Devanagari with its vowel signs
    ],
)
def test_real_writing_is_not_flagged(name: str) -> None:
    policy = Policy.from_yaml_string("defaults: {approval: auto}\nrules: []\n")
    decision = policy.evaluate(Action(name, "crm"))
    assert (decision.approval, decision.flags) == (Approval.AUTO, ())


@pytest.mark.parametrize(
    "fields",
    [{"type": "", "target": "t"}, {"type": "t", "target": ""}, {"type": 5, "target": "t"}],
    ids=["empty-type", "empty-target", "not-a-string"],
)
def test_every_unusable_field_is_one_error_kind(fields: dict[str, Any]) -> None:
    """Adapters refuse (and audit) an unusable call by catching ``ValueError``/``ActionError``
    from ``Action(...)``; an empty or non-string name raising a bare ``TypeError`` slipped past
    that (an MCP ``tools/call`` named "" went unaudited). Still a ``TypeError`` too."""
    with pytest.raises(ActionError) as raised:
        Action(fields["type"], fields["target"])
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, TypeError)
