"""``aegis diff OLD NEW``: which actions change decision between two policies.

Two sources of actions:

* **sampled** (always): for every rule of either policy, names its globs fit (the literal, a
  prefix with a suffix added, wildcards filled in), crossed with params on both sides of each
  condition's threshold and with the param missing, so a changed threshold or a removed rule
  shows up as a changed decision;
* **replayed** (``--replay``): the actions in an audit database since ``--since``, each decided
  by both policies at the time it was recorded ("this change would have blocked 312 of last
  week's actions, here are 5"). Params in the audit are redacted as stored; a condition on a
  redacted param sees the redaction marker.

Output: counts by ``old -> new`` approval and a few examples of each; exit 0 whatever changed
(a diff is a report, not a check).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import Parameter

from aegis.cli.errors import CliError, ExitCode
from aegis.core.policy_diff import compare, samples, to_json, to_text

if TYPE_CHECKING:
    from aegis.core.action import Action


def diff(
    old: Path,
    new: Path,
    /,
    *,
    replay: Annotated[bool, Parameter(negative="")] = False,
    db: Annotated[
        str | None, Parameter(help="Audit store URL or file path (with --replay).")
    ] = None,
    since: str = "7d",
    at: str | None = None,
    examples: int = 5,
    format: Annotated[Literal["table", "json"], Parameter(alias="-f")] = "table",
) -> int:
    """Show which actions change decision between two policies (nothing is executed).

    Parameters
    ----------
    old
        The policy in force.
    new
        The candidate policy.
    replay
        Also replay the actions recorded in the audit database (see --db, --since).
    db
        Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db).
    since
        With --replay: records since this ISO time or span back from now (30m, 1h, 7d).
    at
        Decide the sampled actions as if at this ISO date/time (default now).
    examples
        How many example actions to show per kind of change.
    format
        table or json.
    """
    from aegis.cli.parsing import parse_datetime, parse_since
    from aegis.core.policy import Policy

    if examples < 0:
        raise CliError("--examples: must be 0 or more")
    for path in (old, new):
        if not path.is_file():
            raise CliError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    now = parse_datetime(at, option="--at") if at is not None else dt.datetime.now(dt.UTC)
    start = parse_since(since) if replay else None
    before, after = Policy.from_yaml(old), Policy.from_yaml(new)
    sampled = compare(before, after, ((a, now) for a in samples(before, after)))
    report: dict[str, Any] = {"sampled": sampled}
    if replay:
        from aegis.cli.db_option import open_store

        store = open_store(db)
        try:
            report["replayed"] = compare(before, after, _recorded(store, start))
        finally:
            store.close_sync()
    if format == "json":
        payload = {name: to_json(part, examples) for name, part in report.items()}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return ExitCode.OK
    sys.stdout.write(f"Diff: {old} -> {new} (nothing executed)\n")
    for name, part in report.items():
        label = (
            "sampled from both policies' rules"
            if name == "sampled"
            else (f"replayed from the audit log since {start.isoformat() if start else since}")
        )
        sys.stdout.write("\n" + to_text(label, part, examples))
    return ExitCode.OK


def _recorded(store: Any, since: dt.datetime | None) -> Iterator[tuple[Action | None, dt.datetime]]:
    from aegis.core.action import Action

    after_id = None
    while True:
        batch = store.query(since=since, after_id=after_id, limit=2000, order="asc")
        if not batch:
            return
        for record in batch:
            after_id = record.id
            if record.parent_id is not None:  # a follow-up row of an action already counted
                continue
            try:
                action: Action | None = Action(
                    record.action_type,
                    record.target,
                    params=record.params,
                    agent_id=record.agent_id,
                    session_id=record.session_id,
                )
            except (TypeError, ValueError):
                action = None
            yield action, record.created_at
