"""Reading many audit records without holding them all, and writing them to a file.

Records are fetched in pages by id, so exporting a million-row trail keeps memory flat; a
progress bar (on stderr, only when it is a terminal) shows how far a long export has got.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.record import AuditRecord

PAGE_SIZE = 2000
#: Exports at least this long get a progress bar (when stderr is a terminal).
PROGRESS_MIN_ROWS = 2000


def iter_records(
    store: AuditStore, filters: dict[str, Any], *, limit: int | None
) -> Iterator[AuditRecord]:
    """Matching records in id order; with ``limit``, the most recent ``limit`` of them."""
    if limit is not None:
        yield from reversed(store.query(**filters, limit=limit, order="desc"))
        return
    after: int | None = filters.get("after_id")
    while True:
        page = store.query(**{**filters, "after_id": after}, limit=PAGE_SIZE)
        yield from page
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].id


def export_to_file(
    store: AuditStore,
    filters: dict[str, Any],
    *,
    fmt: Literal["table", "json", "jsonl", "csv"],
    output: Path,
    limit: int | None,
) -> int:
    from aegis.cli.audit_view import TABLE_COLUMNS, record_columns, table_row
    from aegis.cli.output import format_plain, write_records

    total = store.count(**filters)
    if limit is not None:
        total = min(total, limit)
    try:
        handle = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None
    with handle, _progress(total, output) as advance:

        def counted() -> Iterator[AuditRecord]:
            for record in iter_records(store, filters, limit=limit):
                yield record
                advance()

        if fmt == "table":
            handle.write(format_plain(TABLE_COLUMNS, [table_row(r) for r in counted()]))
            written = total
        else:
            written = write_records(
                (r.to_dict() for r in counted()), fmt, handle, columns=record_columns()
            )
    sys.stderr.write(f"Wrote {written} audit record{'s' if written != 1 else ''} to {output}\n")
    return ExitCode.OK


class _progress:
    """A rich progress bar on stderr for long exports; a no-op otherwise."""

    def __init__(self, total: int, output: Path) -> None:
        self.total = total
        self.output = output
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        from rich.console import Console

        console = Console(stderr=True)
        if self.total < PROGRESS_MIN_ROWS or not console.is_terminal:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn(f"Exporting to {self.output}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("export", total=self.total)
        return lambda: self.bar.advance(self.task)

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()
