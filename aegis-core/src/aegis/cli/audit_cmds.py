"""Audit commands: ``audit`` (query, export, ``--tail``), ``audit verify`` and ``stats``.

Which store they read is ``aegis.cli.db_option``'s (``--db``, shared by every command group that
reads the store; ``DbOption``, ``open_store`` and ``store_url`` are still importable from here).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import Parameter

from aegis.cli.audit_view import record_columns
from aegis.cli.db_option import DbOption, open_store
from aegis.cli.db_option import store_url as store_url
from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.record import AuditRecord

AUDIT_HELP = "Show, filter and export the audit trail; 'aegis audit verify' checks its hash chain."

#: Records the table shows without --limit: a screenful; the rest is counted, not printed.
TABLE_LIMIT = 20


def _filters(
    *,
    session: str | None,
    action_type: str | None,
    risk_level: str | None,
    result: str | None,
    agent: str | None,
    decision: str | None = None,
    rule: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """CLI options → ``AuditStore.query`` filters, each value checked so a typo is exit 2."""
    from aegis.cli.parsing import parse_since
    from aegis.core.risk import RiskLevel
    from aegis.runtime.audit.record import DECISIONS, RESULTS

    out: dict[str, Any] = {
        "session": session,
        "action_type": action_type,
        "agent": agent,
        "matched_rule": rule,
    }
    if risk_level is not None:
        levels = [part for part in risk_level.split(",") if part.strip()]
        try:
            out["risk_level"] = [RiskLevel.parse(level) for level in levels]
        except ValueError as exc:
            raise CliError(f"--risk-level: {exc}") from None
    for option, value, allowed, key in (
        ("--result", result, RESULTS, "result"),
        ("--decision", decision, DECISIONS, "decision"),
    ):
        if value is None:
            continue
        wanted = [v.strip().lower() for v in value.split(",") if v.strip()]
        bad = [v for v in wanted if v not in allowed]
        if bad or not wanted:
            raise CliError(f"{option} {value!r}: expected one or more of {', '.join(allowed)}")
        out[key] = wanted
    if since is not None:
        out["since"] = parse_since(since)
    return {k: v for k, v in out.items() if v is not None}


def _resolve_session(store: AuditStore, filters: dict[str, Any]) -> None:
    """``--session`` takes the shortened id a table shows, or any unique prefix."""
    if "session" in filters:
        from aegis.cli.ids import resolve_session

        filters["session"] = resolve_session(store, filters["session"])


def print_records(records: Sequence[AuditRecord], *, title: str | None = None) -> None:
    """The audit table (rich on a terminal, plain when piped); used by ``audit`` and ``demo``."""
    from aegis.cli.audit_view import print_audit_table

    print_audit_table(records, title=title)


def audit(
    *,
    db: DbOption = None,
    session: str | None = None,
    action_type: Annotated[str | None, Parameter(alias="-a")] = None,
    risk_level: Annotated[str | None, Parameter(alias="-r")] = None,
    result: str | None = None,
    agent: str | None = None,
    decision: str | None = None,
    rule: str | None = None,
    since: str | None = None,
    limit: Annotated[int | None, Parameter(alias="-n")] = None,
    format: Annotated[Literal["table", "json", "jsonl", "csv"], Parameter(alias="-f")] = "table",
    output: Annotated[Path | None, Parameter(alias="-o")] = None,
    tail: Annotated[bool, Parameter(negative="")] = False,
    chain: str | None = None,
) -> int:
    """Show the audit trail, filtered; export it as json, jsonl or csv.

    Parameters
    ----------
    db
        Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db).
    session
        Only this session: its id, or a unique prefix such as the 8 characters the table shows.
    action_type
        Action type, globs allowed (delete*).
    risk_level
        low, medium, high or critical (comma-separated for several; any case).
    result
        success, failed, blocked, denied, skipped, interrupted or pending (comma-separated).
    agent
        Only this agent id.
    decision
        auto, approved, denied, timeout, blocked, error, dry_run or skipped
        (comma-separated).
    rule
        Only actions decided by this rule.
    since
        ISO date/time (2026-03-21T18:00) or a span back from now: 30m, 1h, 2d.
    limit
        Only the most recent N records (default: 20 for the table; json, jsonl, csv and
        --output get every record).
    format
        table (for humans), json, jsonl or csv.
    output
        Write to this file instead of stdout (a progress bar shows on a terminal).
    tail
        Keep watching and print new records as they arrive (1 s poll) until Ctrl-C.
    chain
        Show one multi-agent task (its chain id) as a tree of delegating agents.
    """
    if chain is not None:
        from aegis.cli.evidence_cmds import show_chain

        return show_chain(db, chain, format)
    if limit is not None and limit < 1:
        raise CliError("--limit must be at least 1")
    if tail and format == "json":
        raise CliError("--tail cannot stream a JSON array; use --format jsonl")
    filters = _filters(
        session=session,
        action_type=action_type,
        risk_level=risk_level,
        result=result,
        agent=agent,
        decision=decision,
        rule=rule,
        since=since,
    )
    store = open_store(db)
    _resolve_session(store, filters)
    if tail:
        from aegis.cli.audit_tail import tail_records

        return tail_records(store, filters, fmt=format, output=output, limit=limit)

    if output is not None:
        from aegis.cli.audit_export import export_to_file

        return export_to_file(store, filters, fmt=format, output=output, limit=limit)

    from aegis.cli.audit_export import iter_records

    if format == "table":
        shown = limit or TABLE_LIMIT
        records = list(iter_records(store, filters, limit=shown))
        if not records:
            sys.stderr.write("no audit records match\n")
            return ExitCode.OK
        print_records(records)
        if len(records) == shown:
            total = store.count(**filters)
            if total > shown:
                # stderr: a pipe gets only the table, a person sees what was left out.
                sys.stderr.write(f"{total - shown} more: use --limit {total} to show all\n")
        return ExitCode.OK
    from aegis.cli.output import write_records

    write_records(
        (r.to_dict() for r in iter_records(store, filters, limit=limit)),
        format,
        sys.stdout,
        columns=record_columns(),
    )
    return ExitCode.OK


def verify(
    *,
    db: DbOption = None,
    format: Annotated[Literal["text", "json"], Parameter(alias="-f")] = "text",
    checkpoint: Annotated[list[Path] | None, Parameter(consume_multiple=True)] = None,
    public_key: Path | None = None,
) -> int:
    """Check the audit hash chain; name every edited, deleted or inserted record.

    With --checkpoint and --public-key, also check the trail against signed checkpoints: a
    rewritten, truncated or forked trail is named even when every hash was recomputed.
    Exit 0 when the chain is intact, 1 when it was tampered with.

    Parameters
    ----------
    db
        Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db).
    format
        text or json.
    checkpoint
        Checkpoint files or directories (aegis audit checkpoint).
    public_key
        The public key of the checkpoint signer (aegis keys generate).
    """
    if checkpoint or public_key is not None:
        from aegis.cli.evidence_cmds import verify_with_checkpoints

        if not checkpoint:
            raise CliError("--public-key needs --checkpoint (the files to check against)")
        return verify_with_checkpoints(db, checkpoint, public_key, format)
    from aegis.cli.output import write_verdict

    return write_verdict(open_store(db).verify(), format)


def stats(
    *,
    db: DbOption = None,
    session: str | None = None,
    agent: str | None = None,
    since: str | None = None,
    format: Annotated[Literal["table", "json"], Parameter(alias="-f")] = "table",
) -> int:
    """Per-rule statistics: how often each rule decided, and how those actions ended.

    Parameters
    ----------
    db
        Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db).
    session
        Only this session: its id or a unique prefix.
    agent
        Only this agent id.
    since
        ISO date/time or a span back from now: 30m, 1h, 2d.
    format
        table or json.
    """
    filters = _filters(
        session=session, action_type=None, risk_level=None, result=None, agent=agent, since=since
    )
    store = open_store(db)
    _resolve_session(store, filters)
    rows = store.stats(**filters)
    if format == "json":
        import json

        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        return ExitCode.OK
    from aegis.cli.output import print_table

    results = sorted({k for r in rows for k in r.by_result})
    print_table(
        ["Rule", "Total", *(name.capitalize() for name in results), "Decisions"],
        [
            (
                r.rule or "(defaults)",
                r.total,
                *(r.by_result.get(name, 0) for name in results),
                ", ".join(f"{k} {v}" for k, v in r.by_decision.items()),
            )
            for r in rows
        ],
        title="Per-rule statistics",
    )
    return ExitCode.OK
