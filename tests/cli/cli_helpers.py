"""Types shared by the CLI tests (imported by name: tests/cli is on sys.path under pytest)."""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.frozen
class CliRun:
    code: int
    out: str
    err: str


RunCli = Callable[..., CliRun]
