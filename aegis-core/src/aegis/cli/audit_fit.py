"""The audit table on a terminal: one line per record at any width from 80 columns up.

Nine columns do not fit 80 characters at their natural widths, and rich's answer (folding every
cell over several lines, ``succes`` / ``s``) is unreadable. So the terminal view gives up what
carries the least, in this order, until every row fits on one line:

1. a column that says nothing (Agent ``-`` on every row) is dropped;
2. the time loses its year (``12-01 20:03:36``);
3. a Session or a date shared by every row moves into the title;
4. Action, Target and Agent are shortened with ``…`` (never below 8 characters);
5. still too wide: Agent, then Session are hidden, and a note under the table says so.

Risk, Decision and Result are never shortened: they are what a reader scans for. Piped output
and files keep every column at full width (``awk``/``grep`` need stable fields).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from aegis.runtime.audit.record import AuditRecord

#: Space between two columns (rich: padding 1 on each side, none at the table's edges).
GAP = 2
#: A shortened Action/Target/Agent keeps at least this many characters.
FLEX_MIN = 8
FLEXIBLE = ("Agent", "Action", "Target")
#: Hidden, in this order, when shortening alone cannot make a row fit.
HIDE_ORDER = ("Agent", "Session")


@attrs.frozen
class Layout:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[int, ...]
    title: str | None
    hidden: tuple[str, ...]

    @property
    def width(self) -> int:
        return sum(self.widths) + GAP * (len(self.widths) - 1)


def fit(records: Sequence[AuditRecord], width: int, *, title: str | None = None) -> Layout:
    """Columns, cell texts and column widths that fit ``width`` characters."""
    times = [r.created_at.astimezone() for r in records]
    cells: dict[str, list[str]] = {
        "ID": [str(r.id) for r in records],
        "Time": [t.strftime("%Y-%m-%d %H:%M:%S") for t in times],
        "Session": [_short_session(r.session_id) for r in records],
        "Agent": [r.agent_id or "-" for r in records],
        "Action": [r.action_type for r in records],
        "Target": [r.target for r in records],
        "Risk": [r.risk_level or "-" for r in records],
        "Decision": [r.decision for r in records],
        "Result": [r.result for r in records],
    }
    order = list(cells)
    notes: list[str] = [title] if title else []

    def natural() -> int:
        return sum(_natural(name, cells[name]) for name in order) + GAP * (len(order) - 1)

    if all(v == "-" for v in cells["Agent"]):
        order.remove("Agent")
    if natural() > width and len({t.year for t in times}) == 1:
        cells["Time"] = [t.strftime("%m-%d %H:%M:%S") for t in times]
    sessions = {r.session_id for r in records}
    if natural() > width and len(sessions) == 1:
        order.remove("Session")
        notes.append(f"session {next(iter(sessions)) or '-'}")
    if natural() > width and len({t.date() for t in times}) == 1:
        cells["Time"] = [t.strftime("%H:%M:%S") for t in times]
        notes.append(times[0].strftime("%Y-%m-%d"))
    hidden: list[str] = []
    widths = _widths(order, cells, width)
    for name in HIDE_ORDER:
        if widths is not None:
            break
        if name in order:
            order.remove(name)
            hidden.append(name)
            widths = _widths(order, cells, width)
    if widths is None:  # narrower than any layout: shortest flex columns, the terminal wraps
        widths = [
            min(FLEX_MIN, _natural(n, cells[n])) if n in FLEXIBLE else _natural(n, cells[n])
            for n in order
        ]
    rows = tuple(zip(*(cells[name] for name in order), strict=True)) if records else ()
    return Layout(
        columns=tuple(order),
        rows=rows,
        widths=tuple(widths),
        title=" · ".join(notes) or None,
        hidden=tuple(hidden),
    )


def _short_session(session: str | None) -> str:
    """The first 8 characters and ``…``: what ``--session`` accepts back as a prefix."""
    if not session:
        return "-"
    return session if len(session) <= 9 else session[:8] + "\u2026"


def _natural(name: str, values: Sequence[str]) -> int:
    return max([len(name), *(len(v) for v in values)])


def _widths(order: Sequence[str], cells: dict[str, list[str]], width: int) -> list[int] | None:
    """Fixed columns at their natural width; flexible ones share the rest (water-filling), or
    ``None`` when even ``FLEX_MIN`` each does not fit."""
    fixed = sum(_natural(n, cells[n]) for n in order if n not in FLEXIBLE)
    flex = [n for n in order if n in FLEXIBLE]
    room = width - fixed - GAP * (len(order) - 1)
    wanted = {n: _natural(n, cells[n]) for n in flex}
    floor = sum(min(FLEX_MIN, w) for w in wanted.values())
    if room < floor:
        return None
    given: dict[str, int] = {}
    left = room
    for count, name in enumerate(sorted(flex, key=lambda n: wanted[n])):
        share = left // (len(flex) - count)
        given[name] = min(wanted[name], max(share, min(FLEX_MIN, wanted[name])))
        left -= given[name]
    return [given[n] if n in FLEXIBLE else _natural(n, cells[n]) for n in order]


#: ``--tail`` cannot measure records that have not arrived: the widths it plans for.
TAIL_FIXED = {"ID": 6, "Time": 14, "Session": 9, "Risk": 8, "Decision": 8, "Result": 7}


def tail_layout(width: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Columns and widths for ``--tail`` on a terminal ``width`` wide: the fixed columns at the
    widths their values can take, Agent/Action/Target sharing the rest; Session, then Agent,
    dropped when even 8 characters each do not fit."""
    order = ["ID", "Time", "Session", "Agent", "Action", "Target", "Risk", "Decision", "Result"]
    for drop in (None, *HIDE_ORDER):
        if drop is not None:
            order.remove(drop)
        fixed = sum(TAIL_FIXED[n] for n in order if n not in FLEXIBLE)
        flex = [n for n in order if n in FLEXIBLE]
        room = width - fixed - GAP * (len(order) - 1)
        if room >= FLEX_MIN * len(flex):
            share, extra = divmod(room, len(flex))
            widths = {n: share + (1 if i < extra else 0) for i, n in enumerate(flex)}
            return tuple(order), tuple(widths.get(n, TAIL_FIXED.get(n, 0)) for n in order)
    return tuple(order), tuple(TAIL_FIXED.get(n, FLEX_MIN) for n in order)


def clip(value: str, width: int) -> str:
    """``value`` in at most ``width`` characters, ``…`` marking a cut."""
    return value if len(value) <= width else value[: max(width - 1, 0)] + "\u2026"


def terminal_cells(record: AuditRecord) -> dict[str, str]:
    """One record's cells as the terminal shows them (short time and session)."""
    return {
        "ID": str(record.id),
        "Time": record.created_at.astimezone().strftime("%m-%d %H:%M:%S"),
        "Session": _short_session(record.session_id),
        "Agent": record.agent_id or "-",
        "Action": record.action_type,
        "Target": record.target,
        "Risk": record.risk_level or "-",
        "Decision": record.decision,
        "Result": record.result,
    }


def fitted_line(cells: dict[str, str], columns: Sequence[str], widths: Sequence[int]) -> str:
    """One line of a ``tail_layout`` table."""
    parts = [clip(cells[n], w).ljust(w) for n, w in zip(columns, widths, strict=True)]
    return (" " * GAP).join(parts).rstrip()
