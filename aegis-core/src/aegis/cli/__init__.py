"""The ``aegis`` command line.

Commands: ``init``, ``validate``, ``schema``, ``simulate``, ``audit`` (and ``audit verify``),
``stats``, ``plugins``, ``demo``; plugins add more through ``aegis_register_commands``
(``aegis-server`` adds ``serve``).

Exit codes (the same for every command):

====  ==========================================================================================
0     ok
1     check failed: a policy is invalid, the audit chain is broken (edited/deleted/inserted rows)
2     usage error: unknown option, bad value, missing file, malformed ``--param`` or ``type:target``
3     audit store unreachable: no database at the URL, or it cannot be opened or read
4     internal error (a bug in aegis or a plugin); ``AEGIS_DEBUG=1`` shows the traceback
130   interrupted (Ctrl-C); ``aegis audit --tail`` treats Ctrl-C as its normal stop and exits 0
====  ==========================================================================================

Every error is one line on stderr (``aegis: error: ...``, or ``file:line:col: key: message`` for
policy problems); tables go to stdout, rich on a terminal and plain aligned text when piped.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code (see the module docstring)."""
    from aegis.cli.app import run

    return run(argv)
