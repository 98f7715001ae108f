"""A forked server worker is another process: the executions it owns name it, not its parent."""

from __future__ import annotations

import os

import pytest

from aegis.server import executions


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_worker_owns_its_executions_under_its_own_name() -> None:
    parent = executions.OWNER
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its owner name, and leave without cleanup
        try:
            os.write(write, executions.OWNER.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    assert child != parent
    assert child.split(":")[1] == str(pid) and parent.split(":")[1] == str(os.getpid())
