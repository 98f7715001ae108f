"""Printing for humans and for pipes.

On a terminal, tables are rich tables; when stdout is piped or redirected they are plain,
space-aligned text with no ANSI codes, so ``aegis audit | grep delete`` and ``awk`` just work.
Machine formats (json, jsonl, csv) are written the same way everywhere.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Literal, Protocol

from aegis.cli.errors import ExitCode

OutputFormat = Literal["table", "json", "jsonl", "csv"]

#: Terminal-only colours for the words that matter when scanning an audit table.
CELL_STYLES = {
    "CRITICAL": "bold red",
    "HIGH": "red",
    "MEDIUM": "yellow",
    "LOW": "green",
    "success": "green",
    "approved": "green",
    "blocked": "red",
    "denied": "red",
    "failed": "red",
    "timeout": "red",
    "error": "red",
    "pending": "yellow",
}


#: A terminal table column at most this wide is never wrapped (risk levels, counts, decisions).
SHORT_COLUMN = 10


def stdout_is_terminal() -> bool:
    """True when stdout is an interactive terminal (rich honours FORCE_COLOR / TTY_COMPATIBLE)."""
    from rich.console import Console

    return Console().is_terminal


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    file: IO[str] | None = None,
) -> None:
    """A rich table on a terminal, plain aligned columns otherwise."""
    cells = [[csv_value(v) for v in row] for row in rows]
    out = file if file is not None else sys.stdout
    if file is None and stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # No box: borders cost three characters per column, which 80-column terminals need.
        # Short columns never wrap; long ones wrap at spaces (and fold only a word too long).
        table = Table(
            title=title,
            box=None,
            pad_edge=False,
            padding=(0, 1),
            header_style="bold underline",
        )
        for i, name in enumerate(columns):
            longest = max([len(name), *(len(row[i]) for row in cells)])
            table.add_column(name, overflow="fold", no_wrap=longest <= SHORT_COLUMN)
        for row in cells:
            # Text, not str: a cell value is never interpreted as rich markup.
            table.add_row(*(Text(v, style=CELL_STYLES.get(v, "")) for v in row))
        Console().print(table)
        return
    out.write(format_plain(columns, cells, title=title))


def format_plain(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> str:
    """Left-aligned columns separated by two spaces; the header line is the column names."""
    widths = [len(c) for c in columns]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines: list[str] = []
    if title:
        lines.append(title)
    for row in [list(columns), *rows]:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return "\n".join(lines) + "\n"


def print_message(text: str, *, style: str | None = None) -> None:
    """A line of prose for humans: styled on a terminal, plain when piped."""
    if style and stdout_is_terminal():
        from rich.console import Console

        Console().print(text, style=style, markup=False, highlight=False)
    else:
        sys.stdout.write(text + "\n")


def write_records(
    records: Iterable[Mapping[str, Any]],
    fmt: Literal["json", "jsonl", "csv"],
    out: IO[str],
    *,
    columns: Sequence[str],
) -> int:
    """Write dict records as JSON array, JSON lines or CSV; returns how many were written.

    Values that are not JSON types (datetimes, enums) are written as their ``str``; in CSV,
    nested values (params, metadata) are JSON-encoded so that one row stays one line.
    """
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(dict(record), default=str, sort_keys=False) + "\n")
            count += 1
    elif fmt == "json":
        out.write("[")
        for record in records:
            out.write(",\n  " if count else "\n  ")
            out.write(json.dumps(dict(record), default=str))
            count += 1
        out.write("\n]\n" if count else "]\n")
    else:
        writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: csv_value(record.get(k)) for k in columns})
            count += 1
    return count


def csv_value(value: Any) -> str:
    """One value as flat text (table cells and csv fields alike): JSON for containers."""
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def render_records(
    records: Sequence[Mapping[str, Any]],
    fmt: Literal["json", "jsonl", "csv"],
    columns: Sequence[str],
) -> str:
    buffer = io.StringIO()
    write_records(records, fmt, buffer, columns=columns)
    return buffer.getvalue()


def debug_enabled() -> bool:
    return os.environ.get("AEGIS_DEBUG", "") not in ("", "0")


class Verdict(Protocol):
    """A check's report (chain, checkpoints, proof): a verdict, its text, its facts as data."""

    @property
    def ok(self) -> bool: ...

    def summary(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def write_verdict(report: Verdict, fmt: str) -> int:
    """Print a check's report as text or JSON (the same facts either way); the exit code is 0
    when it holds, 1 when it does not."""
    if fmt == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.summary() + "\n")
    return ExitCode.OK if report.ok else ExitCode.CHECK_FAILED
