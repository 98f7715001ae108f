"""Policy versions in a real SQLite audit database: numbering, seeding from a file, rollback,
a follower switching versions, and refusal of a text that does not load."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aegis.core.action import Action
from aegis.errors import PolicyError
from aegis.runtime.audit import AuditStore
from aegis.runtime.policy_versions import PolicyHistory, VersionedPolicy

ALLOW = "rules:\n  - name: reads\n    match: {type: read}\n    approval: auto\n"
BLOCK = "rules:\n  - name: reads\n    match: {type: read}\n    approval: block\n"


@pytest.fixture
def history(tmp_path: Path) -> PolicyHistory:
    return PolicyHistory(AuditStore(tmp_path / "audit.db"))


def test_versions_are_numbered_with_author_and_listed_newest_first(history: PolicyHistory) -> None:
    assert history.head() == 0
    one = history.add(ALLOW, author="key:ops")
    two = history.add(BLOCK, author="key:ops", note="lock reads")
    assert (one.version, two.version) == (1, 2)
    assert history.head() == 2
    assert [v.version for v in history.list()] == [2, 1]
    stored = history.get(2)
    assert stored is not None and stored.yaml == BLOCK and stored.note == "lock reads"
    assert stored.fingerprint != one.fingerprint


def test_a_policy_that_does_not_load_is_never_stored(history: PolicyHistory) -> None:
    history.add(ALLOW, author="key:ops")
    with pytest.raises(PolicyError) as caught:
        history.add("rules:\n  - name: x\n    approval: sometimes\n", author="key:ops")
    assert caught.value.issues[0].line == 3
    assert history.head() == 1


def test_rollback_is_a_new_version_with_the_old_text(history: PolicyHistory) -> None:
    history.add(ALLOW, author="a")
    history.add(BLOCK, author="b")
    back = history.rollback(1, author="cli:me")
    assert (back.version, back.rolled_back_to, back.yaml) == (3, 1, ALLOW)
    with pytest.raises(LookupError):
        history.rollback(9, author="cli:me")


def test_seed_keeps_api_changes_when_the_same_file_is_served_again(
    history: PolicyHistory,
) -> None:
    assert history.seed(ALLOW, path="p.yaml").version == 1
    history.add(BLOCK, author="key:ops")
    # Restart with the unchanged file: version 2 (from the API) stays in force.
    assert history.seed(ALLOW, path="p.yaml").version == 2
    assert history.head() == 2
    # An edited file is a change of its own: it becomes the newest version.
    edited = ALLOW.replace("reads", "all_reads")
    assert history.seed(edited, path="p.yaml").version == 3


def test_concurrent_writers_get_distinct_gapless_numbers(history: PolicyHistory) -> None:
    history.add(ALLOW, author="first")  # tables exist before the race
    numbers: list[int] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        made = history.add(ALLOW.replace("reads", f"r{i}"), author=f"w{i}")
        with lock:
            numbers.append(made.version)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == list(range(2, 10))


def test_a_follower_switches_to_a_newer_version_and_skips_a_broken_row(
    history: PolicyHistory,
) -> None:
    source = VersionedPolicy.open(history, ALLOW, path="p.yaml")
    read = Action("read", "crm")
    assert source.evaluate(read).is_allowed
    other = PolicyHistory(AuditStore(history._store.url))  # another process, same database
    other.add(BLOCK, author="key:ops")
    assert source.refresh() is True
    assert source.version == 2 and not source.evaluate(read).is_allowed
    # A row edited by hand so that it no longer loads: logged, skipped, version 2 stays.
    from sqlalchemy import insert

    from aegis.runtime.policy_versions import versions_table

    with other._tx() as conn:
        conn.execute(
            insert(versions_table).values(
                version=3,
                created_at=0.0,
                author="vandal",
                source="api",
                fingerprint="x",
                yaml="rules: [",
            )
        )
    assert source.refresh() is False
    assert source.version == 2 and source.last_error and "version 3" in source.last_error
