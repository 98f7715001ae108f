"""Exit codes and the one exception commands raise to stop with a message.

Commands never print tracebacks: they raise ``CliError`` with a one-line message and the exit
code that tells a script what kind of failure it was, and the entry point prints it on stderr.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The process exit codes of ``aegis`` (also listed in ``aegis --help``)."""

    OK = 0
    CHECK_FAILED = 1  # the thing checked is bad: invalid policy, tampered audit chain
    USAGE = 2  # bad arguments: no/unknown command or option, missing file, malformed --param
    STORE_UNREACHABLE = 3  # the audit store does not exist or cannot be opened/read
    INTERNAL = 4  # a bug in aegis or a plugin (AEGIS_DEBUG=1 shows the traceback)
    INTERRUPTED = 130  # Ctrl-C, also the usual way to stop ``audit --tail``


EXIT_CODES_HELP = """\
Exit codes: 0 ok; 1 check failed (invalid policy, tampered audit); 2 usage error (no command,
bad arguments, missing file); 3 audit store unreachable; 4 internal error (AEGIS_DEBUG=1 shows the
traceback); 130 interrupted."""


class CliError(Exception):
    """Stop the command: ``message`` goes to stderr as one line, ``code`` becomes the exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
