"""Noticing that a SQLite audit file was deleted or replaced under a running store.

SQLite keeps writing to the file it opened: after ``rm aegis_audit.db`` (or a rename over it)
every commit succeeds into an unlinked inode that nobody can read and that vanishes when the
process exits, so actions would run with no record anyone will ever see. The writer therefore
calls ``FileGuard.check`` inside every write transaction, before it commits; when the path no
longer names the file that was opened, the transaction is rolled back and the write fails with
``AuditError``, so the action does not run (fail closed), and every later write fails the same.

The check is one ``stat`` of the path (compared by device and inode with the file as opened)
and a look at a descriptor held on the write-ahead log, which is unlinked when the log is
deleted or replaced: a few microseconds per commit batch, measured by ``nox -s bench``'s
``guard`` figure. The path is made absolute when the store opens, so a later ``chdir`` does not
move it.

Where Linux's ``/proc/self/fd`` names the held descriptor, that look is a ``readlink`` of it
(the kernel appends `` (deleted)`` once the file is unlinked), not an ``fstat``: any stat of the
log, which every commit appends to, makes the kernel stamp the log's next write with a
fine-grained time (Linux 6.13+ multigrain timestamps), and that dirtied inode cost b1 ~35-40 us
of CPU and ~60 us of wall time per action on ext4 (``bench/b1_cpu.py``, alternating runs). The
``readlink`` reads no timestamp. Elsewhere the link count from ``fstat`` says the same.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from aegis.errors import AuditError

#: What Linux appends to a ``/proc/self/fd`` link whose file has been unlinked.
_DELETED = " (deleted)"


class FileGuard:
    """Identity of one SQLite database file (and its WAL), checked before each commit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._path = str(self.path)  # os.stat on a str skips Path.__fspath__ on the hot path
        self._wal_path = f"{self._path}-wal"
        self._identity: tuple[int, int] | None = None
        self._wal_fd: int | None = None
        #: ``/proc/self/fd/N`` of ``_wal_fd`` where it names the log (Linux), else None.
        self._wal_link: str | None = None
        self.failed: str | None = None

    def arm(self) -> None:
        """Remember the file as it is now (call right after the write connection opened it)."""
        st = os.stat(self._path)
        self._identity = (st.st_dev, st.st_ino)
        self._hold_wal()

    def check(self) -> None:
        """Raise ``AuditError`` when the path no longer names the file that was opened."""
        if self.failed is not None:
            raise AuditError(self.failed)
        identity = self._identity
        if identity is None:
            return
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._fail("was deleted")
        except OSError as exc:
            self._fail(f"cannot be checked ({exc})")
        else:
            if (st.st_dev, st.st_ino) != identity:
                self._fail("was replaced by another file")
        fd = self._wal_fd
        if fd is None:
            self._hold_wal()
        elif self._wal_unlinked(fd):
            self._fail("has lost its write-ahead log (the -wal file was deleted or replaced)")

    def _wal_unlinked(self, fd: int) -> bool:
        link = self._wal_link
        if link is not None:
            try:
                return os.readlink(link).endswith(_DELETED)
            except OSError:  # /proc went away under us: the link count says the same
                self._wal_link = None
        return os.fstat(fd).st_nlink == 0

    def close(self) -> None:
        fd, self._wal_fd = self._wal_fd, None
        self._wal_link = None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _hold_wal(self) -> None:
        with contextlib.suppress(OSError):  # no WAL yet (or not in WAL mode): checked later
            fd = os.open(self._wal_path, os.O_RDONLY)
            self._wal_fd = fd
            self._wal_link = _proc_link(fd)

    def _fail(self, what: str) -> None:
        self.failed = (
            f"the audit database {self.path} {what} while the store was open; records would go "
            "to a file nobody can read, so nothing more is written or run (reopen the store)"
        )
        raise AuditError(self.failed)


def _proc_link(fd: int) -> str | None:
    """``/proc/self/fd/<fd>`` when it names ``fd``'s file and shows it linked (Linux), else None."""
    link = f"/proc/self/fd/{fd}"
    try:
        target = os.readlink(link)
    except OSError:  # no procfs (another OS, a sandbox without /proc)
        return None
    return None if target.endswith(_DELETED) else link
