"""Rows a dead process left 'pending' become 'interrupted', never pending forever.

``begin`` writes the pending row before an action runs; if the process dies (SIGKILL, OOM, power)
before ``finish``, that row would say "pending" for ever, look like an action still running, and
hold every sink's scan back to it. So each intent row records its **owner** (``host:pid:start``,
the start being the process's start time in clock ticks on Linux, which tells a reused pid from
the original, plus the boot id and pid namespace), and whenever a store opens, and on
``aegis audit recover``, pending rows whose owner is provably gone are closed with the outcome
``interrupted``:

* same host and boot, same pid namespace: no such process, a zombie, or a process with another
  start time means gone; a row from an earlier boot of this host is gone too;
* same host name but another pid namespace (containers sharing a name): cannot be told;
* another host, or a row written before owners were recorded: cannot be told from here, so it is
  left alone unless ``older_than`` is given (``aegis audit recover --older-than 1d``).

The outcome says which process and host owned it, and that the action *may or may not have run*
(it began; nobody saw it end). It is sealed into the chain like any outcome, so it cannot later
be turned into "success" unnoticed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from pathlib import Path

from sqlalchemy import Engine, select

from aegis.runtime.audit.chain import canonical
from aegis.runtime.audit.record import now_iso
from aegis.runtime.audit.schema import audit_log
from aegis.runtime.audit.writer import FINAL, GroupCommitWriter, WriteOp

log = logging.getLogger("aegis.audit")

INTERRUPTED = "interrupted"


def _start_ticks(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a Linux process from /proc, or None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _machine() -> tuple[str, str]:
    """(boot id, pid namespace) of this process: a reboot, or another container that shares
    the host name, must not be mistaken for "the same machine, the process is gone"."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = ""
    try:
        ns = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        ns = ""
    return boot, ns


def current_owner() -> str:
    """``host:pid:ticks/boot/pidns`` of this process (the last part is empty off Linux)."""
    pid = os.getpid()
    found = _start_ticks(pid)
    boot, ns = _machine()
    return f"{socket.gethostname()}:{pid}:{found[1] if found else ''}/{boot}/{ns}"


def owner_gone(owner: str | None) -> bool | None:
    """True when the owning process is certainly dead; None when that cannot be told here."""
    if not owner:
        return None
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, token = parts[0], int(parts[1]), parts[2]
    if host != socket.gethostname():
        return None
    start, marked, machine = token.partition("/")
    if marked:  # tokens without the machine part carry only the start ticks
        boot, _, ns = machine.partition("/")
        my_boot, my_ns = _machine()
        if boot and my_boot and boot != my_boot:
            return True  # the machine rebooted since: every process of that boot is gone
        if ns != my_ns:
            return None  # another pid namespace (a container): its pids are not ours to judge
    found = _start_ticks(pid)
    if found is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False if not start else None  # no /proc here, yet the pid exists
    state, ticks = found
    return state in ("Z", "X") or (bool(start) and ticks != start)


def mark_interrupted(
    engine: Engine, writer: GroupCommitWriter, *, older_than: dt.timedelta | None = None
) -> list[int]:
    """Close every pending row whose owner is gone (see the module docstring); their ids."""
    c = audit_log.c
    cutoff = None
    if older_than is not None:
        cutoff = (dt.datetime.now(dt.UTC) - older_than).isoformat(timespec="microseconds")
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.owner, c.created_at).where(c.result == "pending").order_by(c.id)
        ).all()
    closed: list[int] = []
    futures = []
    for rid, owner, created in rows:
        gone = owner_gone(owner)
        if gone is None and cutoff is not None and created < cutoff:
            why = (
                f"owned by {owner}, which cannot be checked from here"
                if owner
                else "written before owners were recorded"
            )
            reason = f"interrupted: no outcome since {created} ({why}); it may or may not have run"
        elif gone:
            host, pid, _ = owner.rsplit(":", 2)
            reason = (
                f"interrupted: process {pid} on {host} ended before recording an outcome; "
                "the action may or may not have run"
            )
        else:
            continue
        rest = (now_iso(), INTERRUPTED, None, reason, None, None, None)
        op = WriteOp(FINAL, (int(rid), None, rest, canonical(rest)))
        futures.append((int(rid), writer.submit_nowait(op)))
    for rid, fut in futures:
        try:
            fut.result(timeout=30)
        except Exception as exc:  # finished meanwhile (not pending any more), or unwritable
            log.warning("could not mark audit record %s interrupted: %s", rid, exc)
        else:
            closed.append(rid)
    if closed:
        log.warning("marked %d audit record(s) interrupted: %s", len(closed), closed[:20])
    return closed
