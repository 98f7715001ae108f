"""How an audit record looks on screen and in exports: shared by listing, export and tail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.runtime.audit.record import AuditRecord

TABLE_COLUMNS = ("ID", "Time", "Session", "Agent", "Action", "Target", "Risk", "Decision", "Result")


def table_row(record: AuditRecord) -> tuple[str, ...]:
    created = record.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    session = record.session_id or "-"
    if len(session) > 11:
        session = session[:8] + "..."
    return (
        str(record.id),
        created,
        session,
        record.agent_id or "-",
        record.action_type,
        record.target,
        record.risk_level or "-",
        record.decision,
        record.result,
    )


def record_columns() -> list[str]:
    """Every field of an audit record, in the store's order (the csv header)."""
    import attrs

    from aegis.runtime.audit.record import AuditRecord

    return [field.name for field in attrs.fields(AuditRecord)]


def print_audit_table(records: Sequence[AuditRecord], *, title: str | None = None) -> None:
    """The audit table: fitted to the terminal (``audit_fit``), full plain columns when piped."""
    from aegis.cli.output import print_table, stdout_is_terminal

    if not stdout_is_terminal():
        print_table(TABLE_COLUMNS, [table_row(r) for r in records], title=title)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from aegis.cli.audit_fit import fit
    from aegis.cli.output import CELL_STYLES

    console = Console()
    layout = fit(records, console.width, title=title)
    table = Table(
        title=layout.title,
        box=None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold underline",
    )
    for name, width in zip(layout.columns, layout.widths, strict=True):
        table.add_column(
            name,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if name == "ID" else "left",
        )
    for row in layout.rows:
        # Text, not str: a cell value is never interpreted as rich markup.
        table.add_row(*(Text(v, style=CELL_STYLES.get(v, "")) for v in row))
    console.print(table)
    if layout.hidden:
        console.print(
            f"({', '.join(layout.hidden)} hidden to fit {console.width} columns; "
            "--format csv shows every field)",
            style="dim",
            markup=False,
            highlight=False,
        )
