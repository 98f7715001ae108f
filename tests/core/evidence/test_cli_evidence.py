"""The evidence commands end to end, in process: keys, checkpoint, verify, prove, recover."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from audit_helpers import action, decide, raw, run_action
from evidence_helpers import rewrite_consistently

from aegis.cli import main
from aegis.runtime.audit import AuditStore


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return int(code), out, err


async def test_keys_checkpoint_verify_and_a_rewrite(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "keys", "generate", "--out", str(tmp_path / "k"))
    assert code == 0 and "key id" in out
    key, pub = tmp_path / "k" / "aegis.key", tmp_path / "k" / "aegis.pub"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    code, _, err = cli(capsys, "keys", "generate", "--out", str(tmp_path / "k"))
    assert code != 0 and "already exists" in err

    async with AuditStore(db_url) as store:
        for _ in range(4):
            await run_action(store)
    cps = tmp_path / "cps"
    cps.mkdir()
    assert (
        cli(capsys, "audit", "checkpoint", "--key", str(key), "--db", db_url, "-o", str(cps))[0]
        == 0
    )
    async with AuditStore(db_url) as store:
        await run_action(store)
    code, out, _ = cli(capsys, "audit", "checkpoint", "--key", str(key), "--db", db_url)
    assert code == 0 and json.loads(out)["size"] == 5
    (cps / "second.json").write_text(out)

    verify = ("audit", "verify", "--db", db_url, "--checkpoint", str(cps), "--public-key", str(pub))
    code, out, _ = cli(capsys, *verify)
    assert code == 0 and "2 checkpoint(s) signed and matching" in out, out

    rewrite_consistently(db_url, 5, "target", "elsewhere")
    assert cli(capsys, "audit", "verify", "--db", db_url)[0] == 0  # the chain alone: fooled
    code, out, _ = cli(capsys, *verify, "-f", "json")
    payload = json.loads(out)
    assert code == 1 and not payload["ok"] and payload["chain_ok"]
    assert [f["kind"] for f in payload["findings"]] == ["rewritten", "rewritten"]
    assert payload["findings"][0]["checkpoint"].endswith("second.json")

    code, _, err = cli(capsys, "audit", "verify", "--db", db_url, "--checkpoint", str(cps))
    assert code == 2 and "--public-key" in err


async def test_prove_and_verify_proof_offline(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "keys", "generate", "--out", str(tmp_path), "--name", "k")
    async with AuditStore(db_url) as store:
        for _ in range(6):
            await run_action(store)
    cp = tmp_path / "cp.json"
    cli(
        capsys,
        "audit",
        "checkpoint",
        "--key",
        str(tmp_path / "k.key"),
        "--db",
        db_url,
        "-o",
        str(cp),
    )
    proof = tmp_path / "proof.json"
    code, _, _ = cli(
        capsys, "audit", "prove", "3", "--checkpoint", str(cp), "--db", db_url, "-o", str(proof)
    )
    assert code == 0
    os.remove(db_url.removeprefix("sqlite:///"))  # offline: the database is gone
    pub = str(tmp_path / "k.pub")
    code, out, _ = cli(capsys, "audit", "verify-proof", str(proof), "--public-key", pub)
    assert code == 0 and out.startswith("OK: record 3")
    data = json.loads(proof.read_text())
    data["record"]["outcome"]["result"] = "failed"
    proof.write_text(json.dumps(data))
    code, out, _ = cli(
        capsys, "audit", "verify-proof", str(proof), "--public-key", pub, "-f", "json"
    )
    assert code == 1 and json.loads(out)["ok"] is False
    proof.write_text("{")
    assert cli(capsys, "audit", "verify-proof", str(proof), "--public-key", pub)[0] == 1


async def test_recover_with_older_than(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with AuditStore(db_url) as store:
        act = action()
        rid = await store.begin(act, decide(act))
    raw(
        db_url,
        "UPDATE aegis_audit SET owner = 'far-away:7:7', created_at = '2001-01-01' WHERE id = 1",
    )
    code, out, _ = cli(capsys, "audit", "recover", "--db", db_url)
    assert code == 0 and "marked 0 record(s)" in out and "1 still pending" in out
    code, out, _ = cli(capsys, "audit", "recover", "--db", db_url, "--older-than", "1d")
    assert code == 0 and f"marked 1 record(s) interrupted: {rid}; 0 still pending" in out
    code, out, _ = cli(capsys, "audit", "--db", db_url, "--result", "interrupted", "-f", "json")
    assert [r["id"] for r in json.loads(out)] == [rid]
    assert "far-away:7:7" in json.loads(out)[0]["reason"]
    assert cli(capsys, "audit", "recover", "--db", db_url, "--older-than", "soon")[0] == 2
