"""A forked child is another process: the requests it stores name it as their waiter, not the
parent it was copied from (else the reaper would abandon the child's live wait when the parent
exits, and never reap the child's requests while the parent lives)."""

from __future__ import annotations

import json
import os

import pytest

from aegis import Action, Policy
from aegis.runtime.approval import rows

POLICY = Policy.from_yaml_string(
    "rules:\n  - name: pay\n    match: { type: pay }\n    approval: approve\n"
)


def _owner_fields() -> dict[str, object]:
    action = Action("pay", "bank", params={"amount": 5})
    decision = POLICY.evaluate(action)
    values = rows.request_values(
        action, decision, rows.DEFAULT_REQUIREMENTS, 60.0, ("auto",), {"amount": 5}, None
    )
    return {k: values[k] for k in ("owner_host", "owner_pid", "owner_started")}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_names_itself_as_the_waiter() -> None:
    parent = _owner_fields()
    assert parent["owner_pid"] == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its rows would say, and leave without cleanup
        try:
            os.write(write, json.dumps(_owner_fields()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child["owner_pid"] == pid
    assert child["owner_started"] != parent["owner_started"]
    assert str(pid) in str(child["owner_started"]).split(":")
    assert child["owner_host"] == parent["owner_host"]
