"""Types shared by the CLI tests (imported by name: tests/cli is on sys.path under pytest)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import attrs

#: The installed console script (the venv's bin/ next to this interpreter).
AEGIS_SCRIPT = Path(sys.executable).with_name("aegis")


@attrs.frozen
class CliRun:
    code: int
    out: str
    err: str


RunCli = Callable[..., CliRun]
