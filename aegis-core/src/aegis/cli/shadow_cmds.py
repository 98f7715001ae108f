"""``aegis shadow report``: what a shadow policy would have changed, from the audit trail.

A runtime given ``shadow=`` (or ``aegis serve --shadow FILE``) records the candidate policy's
decision with every record; this reads them back and counts, by rule, the actions whose
decision would change (``auto -> block``, ``block -> auto`` ...), with a few example records.
Nothing is executed. Exit 0 whatever changed (a report), unless ``--fail-on-change``: then 1
when any decision would change, for a rollout gate in CI.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Literal

from cyclopts import App, Parameter

from aegis.cli.db_option import DbOption
from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.runtime.shadow_report import ShadowExample, ShadowReport

HELP = "Shadow mode: what a candidate policy, run beside the live one, would have changed."


def build() -> App:
    app = App(name="shadow", help=HELP)
    app.command(report, name="report")
    return app


def report(
    *,
    db: DbOption = None,
    since: str | None = None,
    examples: int = 5,
    fail_on_change: Annotated[bool, Parameter(negative="")] = False,
    format: Annotated[Literal["table", "json"], Parameter(alias="-f")] = "table",
) -> int:
    """Count live -> shadow decision changes by rule, with example records (nothing runs).

    Parameters
    ----------
    db
        Audit store URL or file path (default: $AEGIS_AUDIT_URL or ./aegis_audit.db).
    since
        Only records since this ISO time or span back from now (30m, 1h, 7d); default all.
    examples
        How many example records to show per kind of change.
    fail_on_change
        Exit 1 when any decision would change (a rollout gate).
    format
        table or json.
    """
    from aegis.cli.db_option import open_store
    from aegis.cli.parsing import parse_since
    from aegis.runtime.shadow_report import shadow_report

    if examples < 0:
        raise CliError("--examples: must be 0 or more")
    start = parse_since(since) if since is not None else None
    store = open_store(db)
    try:
        result = store.read(shadow_report, since=start, examples=examples)
    finally:
        store.close_sync()
    if format == "json":
        payload = {"since": start.isoformat() if start else None, **result.to_dict()}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        window = f" since {start.isoformat(timespec='seconds')}" if start else ""
        sys.stdout.write(_text(result, window))
    if fail_on_change and result.changed:
        return ExitCode.CHECK_FAILED
    return ExitCode.OK


def _text(result: ShadowReport, window: str) -> str:
    if not result.has_column:
        return "No shadow decisions: this audit store was written before shadow mode.\n"
    if not result.records:
        return (
            f"No records{window} carry a shadow decision (give the runtime shadow=POLICY, "
            "or run aegis serve --shadow FILE).\n"
        )
    lines = [
        f"Shadow report: {result.records:,} records{window} carry a shadow decision "
        "(nothing executed)",
        f"  would change: {result.changed:,}   risk only: {result.risk_only:,}   "
        f"unchanged: {result.unchanged:,}   shadow errors: {result.errors:,}",
    ]
    for fingerprint, count in sorted(result.policies.items(), key=lambda kv: -kv[1]):
        lines.append(f"  shadow policy {fingerprint[:12]}: {count:,} records")
    if result.changes:
        lines += ["", "Would change (live -> shadow), by rule:"]
    for change in result.changes:
        unknown = f"   (shadow: {', '.join(change.unknown)} unknown)" if change.unknown else ""
        lines.append(
            f"  {change.count:>7,}  {change.live} -> {change.shadow}   "
            f"rule {_rule(change.live_rule)} -> {_rule(change.shadow_rule)}{unknown}"
        )
        lines += [f"           {_example(e)}" for e in change.examples]
    if result.error_kinds:
        lines += ["", "Shadow errors (the shadow could not decide; the live policy did):"]
    for kind in result.error_kinds:
        ids = ", ".join(f"#{i}" for i in kind.example_ids)
        message = kind.message if len(kind.message) <= 160 else kind.message[:159] + "…"
        lines.append(f"  {kind.count:>7,}  {message}" + (f"   e.g. {ids}" if ids else ""))
    return "\n".join(lines) + "\n"


def _rule(name: str | None) -> str:
    return name if name else "(defaults)"


def _said(decision: dict[str, object]) -> str:
    rule = decision.get("matched_rule")
    name = _rule(rule if isinstance(rule, str) else None)
    return f"{decision.get('approval')} ({name}, {decision.get('risk_level')})"


def _example(e: ShadowExample) -> str:
    agent = f" agent={e.agent_id}" if e.agent_id else ""
    return (
        f"#{e.id} {e.created_at[:19]} {e.action_type} on {e.target}{agent}: "
        f"live {_said(e.live)} -> shadow {_said(e.shadow)}"
    )
