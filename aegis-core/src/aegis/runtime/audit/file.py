"""Noticing that a SQLite audit file was deleted or replaced under a running store.

SQLite keeps writing to the file it opened: after ``rm aegis_audit.db`` (or a rename over it)
every commit succeeds into an unlinked inode that nobody can read and that vanishes when the
process exits, so actions would run with no record anyone will ever see. The writer therefore
calls ``FileGuard.check`` inside every write transaction, before it commits; when the path no
longer names the file that was opened, the transaction is rolled back and the write fails with
``AuditError``, so the action does not run (fail closed), and every later write fails the same.

The check is one ``stat`` of the path (compared by device and inode with the file as opened)
and one ``fstat`` of a descriptor held on the write-ahead log (whose link count drops to zero
when it is deleted or replaced): a few microseconds per commit batch, measured by ``nox -s
bench``'s ``guard`` figure. The path is made absolute when the store opens, so a later
``chdir`` does not move it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from aegis.errors import AuditError


class FileGuard:
    """Identity of one SQLite database file (and its WAL), checked before each commit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._path = str(self.path)  # os.stat on a str skips Path.__fspath__ on the hot path
        self._wal_path = f"{self._path}-wal"
        self._identity: tuple[int, int] | None = None
        self._wal_fd: int | None = None
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
        elif os.fstat(fd).st_nlink == 0:
            self._fail("has lost its write-ahead log (the -wal file was deleted or replaced)")

    def close(self) -> None:
        fd, self._wal_fd = self._wal_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _hold_wal(self) -> None:
        with contextlib.suppress(OSError):  # no WAL yet (or not in WAL mode): checked later
            self._wal_fd = os.open(self._wal_path, os.O_RDONLY)

    def _fail(self, what: str) -> None:
        self.failed = (
            f"the audit database {self.path} {what} while the store was open; records would go "
            "to a file nobody can read, so nothing more is written or run (reopen the store)"
        )
        raise AuditError(self.failed)
