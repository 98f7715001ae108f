"""``aegis audit verify -f json`` (with and without checkpoints) says everything the text says.

A script reading the JSON must learn every fact a person reading the text learns: above all
that some approval answers are not covered by the chain (late, or naming no request), which
the checkpoint form's JSON used to leave out. Each test reads both outputs of one trail and
checks the facts parsed from the text against the JSON's fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import action, decide, raw, run_action
from evidence_helpers import rewrite_consistently

from aegis.cli import main
from aegis.runtime.audit import AuditStore


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return int(code), capsys.readouterr().out


#: A checkpoint finding's line ("  rewritten: cp.json: ..."), not a chain problem's ("row 3").
FINDING = r"  (bad_signature|wrong_key|truncated|rewritten|forked): (?!rows? \d)"


def text_facts(text: str) -> dict[str, Any]:
    """What a person reads in ``summary()``, as the JSON's field names would hold it."""
    lines = text.splitlines()
    facts: dict[str, Any] = {"status": lines[0].split(":", 1)[0].lower()}
    head = re.search(r"(\d+) records checked, chain head at id (\d+)", lines[0])
    if head:
        facts["checked"], facts["last_id"] = int(head[1]), int(head[2])
    counted = re.search(r"(\d+) problem\(s\)", lines[0])
    facts["problems"] = [
        line.strip()
        for line in lines[1:]
        if re.match(r"  \w+: rows? \d", line)  # "  edited: row 3: ..."
    ]
    if counted:
        assert int(counted[1]) == len(facts["problems"])
    facts["pending"], facts["unchained_answers"], facts["unchained_requests"] = [], 0, []
    for line in lines[1:]:
        if found := re.match(r"  (\d+) record\(s\) without an outcome: ([\d, ]+)", line):
            facts["pending"] = [int(i) for i in found[2].split(", ")]
            assert int(found[1]) == len(facts["pending"])
        elif found := re.match(r"  (\d+) approval answer\(s\) not covered by the chain", line):
            facts["unchained_answers"] = int(found[1])
            facts["unchained_requests"] = line.split(": request(s) ", 1)[1].split(", ")
        elif found := re.match(r"OK: (\d+) checkpoint\(s\) signed and matching", line):
            facts["checkpoints"] = facts["matching"] = int(found[1])
            facts["findings"] = []
        elif found := re.match(r"CHECKPOINTS: (\d+) of (\d+) match the trail, (\d+)", line):
            facts["matching"], facts["checkpoints"] = int(found[1]), int(found[2])
            facts["findings"] = [f.strip() for f in lines if re.match(FINDING, f)]
            assert int(found[3]) == len(facts["findings"])
    return facts


def assert_same_facts(text: str, payload: dict[str, Any]) -> dict[str, Any]:
    facts = text_facts(text)
    shown = {
        "status": payload["status"],
        "checked": payload["checked"],
        "last_id": payload["last_id"],
        "problems": [
            f"{p['kind']}: "
            + (
                f"row {p['first_id']}"
                if p["first_id"] == p["last_id"]
                else f"rows {p['first_id']}-{p['last_id']}"
            )
            + f": {p['detail']}"
            for p in payload["problems"]
        ],
        "pending": payload["pending"][:20],
        "unchained_answers": payload["unchained_answers"],
        "unchained_requests": payload["unchained_requests"],
    }
    if "findings" in facts:
        shown["checkpoints"] = payload["checkpoints"]
        shown["matching"] = payload["matching"]
        shown["findings"] = [
            f"{f['kind']}: {f['checkpoint']}: {f['detail']}" for f in payload["findings"]
        ]
    assert {k: facts[k] for k in shown} == shown
    return facts


async def unchained_trail(url: str, *, pending: bool = False) -> None:
    """Three records, an answer naming no request (stored, refused, sealed by no record), and
    optionally an action still without an outcome."""
    async with AuditStore(url) as store:
        for _ in range(3):
            await run_action(store)
        bogus = store.approvals.respond(
            "no-such-request", channel="test", responder="mallory", verdict="approve"
        )
        assert not bogus.accepted
        if pending:
            act = action()
            await store.begin(act, decide(act), None)


@pytest.mark.parametrize("pending", [False, True], ids=["intact", "pending"])
async def test_verify_json_has_what_the_text_says(
    db_url: str, capsys: pytest.CaptureFixture[str], pending: bool
) -> None:
    await unchained_trail(db_url, pending=pending)
    code, text = cli(capsys, "audit", "verify", "--db", db_url)
    code_json, out = cli(capsys, "audit", "verify", "--db", db_url, "-f", "json")
    payload = json.loads(out)
    assert code == code_json == 0 and payload["ok"]
    facts = assert_same_facts(text, payload)
    assert facts["unchained_answers"] == 1 and facts["unchained_requests"] == ["no-such-request"]
    assert facts["status"] == ("incomplete" if pending else "ok")
    assert payload["last_hash"] == AuditStore(db_url).verify().last_hash


async def test_checkpoint_verify_json_counts_unchained_answers(
    db_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gap: with --checkpoint, the text named the unchained answers, the JSON did not."""
    key, pub = keys
    await unchained_trail(db_url)
    cp = tmp_path / "cp.json"
    assert (
        cli(capsys, "audit", "checkpoint", "--key", str(key), "--db", db_url, "-o", str(cp))[0] == 0
    )
    verify = ("audit", "verify", "--db", db_url, "--checkpoint", str(cp), "--public-key", str(pub))
    code, text = cli(capsys, *verify)
    code_json, out = cli(capsys, *verify, "-f", "json")
    payload = json.loads(out)
    assert code == code_json == 0 and payload["ok"] and payload["chain_ok"]
    facts = assert_same_facts(text, payload)
    assert facts["unchained_answers"] == 1 and facts["checkpoints"] == facts["matching"] == 1
    # Same chain fields as the plain verify's JSON, so one script reads both.
    _, plain = cli(capsys, "audit", "verify", "--db", db_url, "-f", "json")
    assert json.loads(plain).items() <= payload.items()


async def test_checkpoint_verify_json_when_tampered(
    db_url: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edited record and a record that no longer matches its checkpoint: both outputs name
    the chain's problem, the checkpoint's finding and the unchained answer alike."""
    key, pub = keys
    await unchained_trail(db_url)
    cp = tmp_path / "cp.json"
    cli(capsys, "audit", "checkpoint", "--key", str(key), "--db", db_url, "-o", str(cp))
    rewrite_consistently(db_url, 2, "target", "elsewhere")  # the checkpoint catches this...
    raw(db_url, "UPDATE aegis_audit SET target = 'other' WHERE id = 1")  # ...the chain this
    verify = ("audit", "verify", "--db", db_url, "--checkpoint", str(cp), "--public-key", str(pub))
    code, text = cli(capsys, *verify)
    code_json, out = cli(capsys, *verify, "-f", "json")
    payload = json.loads(out)
    assert code == code_json == 1 and not payload["ok"] and not payload["chain_ok"]
    facts = assert_same_facts(text, payload)
    assert facts["status"] == "tampered" and payload["edited"] == [1]
    assert {f["kind"] for f in payload["findings"]} == {"rewritten"}  # records and outcomes
    assert facts["unchained_answers"] == 1
