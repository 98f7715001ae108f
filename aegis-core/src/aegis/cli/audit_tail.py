"""``aegis audit --tail``: print new audit records as they are committed, until Ctrl-C.

Polls once a second for ids above the last one seen. The store's readers do not block its
writer (WAL), so tailing a trail that a busy agent is writing costs that agent nothing.
Ctrl-C is the normal way to stop; it still exits 130 like any interrupted command (the exit-code
table has no exceptions), after flushing and closing the output file.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from aegis.cli.errors import CliError

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.record import AuditRecord

TAIL_INTERVAL = 1.0
#: Records shown before following, like ``tail`` (``--limit`` changes it).
TAIL_BACKLOG = 10
#: Fixed column widths, so lines printed seconds apart still line up.
_WIDTHS = (6, 19, 10, 12, 20, 20, 8, 9, 8)


def tail_records(
    store: AuditStore,
    filters: dict[str, Any],
    *,
    fmt: Literal["table", "json", "jsonl", "csv"],
    output: Path | None,
    limit: int | None,
    interval: float = TAIL_INTERVAL,
) -> int:
    try:
        out: IO[str] = output.open("a", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None
    emit = _emitter(fmt, out)
    pending: set[int] = set()  # begun but not finished: printed once they have an outcome

    def show(records: list[AuditRecord]) -> None:
        for record in records:
            if record.result == "pending":
                pending.add(record.id)
            else:
                emit(record)
        out.flush()

    ctrl_c = _CtrlC()
    try:
        backlog = store.query(**filters, limit=limit or TAIL_BACKLOG, order="desc")
        last_id = backlog[0].id if backlog else _newest_id(store)
        show(list(reversed(backlog)))
        while True:
            ctrl_c.check()
            time.sleep(interval)
            waiting = sorted(pending)
            pending.clear()  # show() puts back the ones still without an outcome
            finished = [r for r in map(store.get, waiting) if r is not None]
            fresh = store.query(**filters, after_id=last_id, limit=None)
            if fresh:
                last_id = fresh[-1].id
            show(finished + fresh)
    finally:
        ctrl_c.restore()
        if output is not None:
            out.close()


class _CtrlC:
    """Ctrl-C that cannot be lost. Python's default handler raises KeyboardInterrupt wherever the
    main thread happens to be; raised inside a finaliser (SQLAlchemy's pool has some), it is
    printed as "Exception ignored" and swallowed, and the tail would run on. This handler also
    remembers the signal, and the loop raises it again at its next turn."""

    def __init__(self) -> None:
        self.seen = False
        self.installed = threading.current_thread() is threading.main_thread()
        self.previous: Any = None
        if self.installed:
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.installed:
            previous = self.previous if self.previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            self.installed = False


def _newest_id(store: AuditStore) -> int:
    newest = store.query(limit=1, order="desc")
    return newest[0].id if newest else 0


def _emitter(fmt: str, out: IO[str]) -> Any:
    import csv
    import json

    from aegis.cli.audit_view import TABLE_COLUMNS, record_columns, table_row

    if fmt == "jsonl":
        return lambda r: out.write(json.dumps(r.to_dict(), default=str) + "\n")
    if fmt == "csv":
        columns = record_columns()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        return lambda r: writer.writerow(_csv_row(r, columns))
    if out is sys.stdout:
        from aegis.cli.output import stdout_is_terminal

        if stdout_is_terminal():
            return _terminal_emitter(out)
    out.write(_line(TABLE_COLUMNS) + "\n")

    def line(record: AuditRecord) -> None:
        out.write(_line(table_row(record)) + "\n")

    return line


def _terminal_emitter(out: IO[str]) -> Any:
    """Lines that fit the terminal (widths fixed up front: later records must line up)."""
    from rich.console import Console

    from aegis.cli.audit_fit import fitted_line, tail_layout, terminal_cells

    columns, widths = tail_layout(Console().width)
    out.write(fitted_line({n: n for n in columns}, columns, widths) + "\n")
    return lambda r: out.write(fitted_line(terminal_cells(r), columns, widths) + "\n")


def _csv_row(record: AuditRecord, columns: list[str]) -> dict[str, str]:
    from aegis.cli.output import csv_value

    data = record.to_dict()
    return {k: csv_value(data.get(k)) for k in columns}


def _line(values: tuple[str, ...]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, _WIDTHS, strict=True)).rstrip()
