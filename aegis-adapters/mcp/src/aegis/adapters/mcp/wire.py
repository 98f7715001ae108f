"""JSON lines on the stdio fast path, read and written without building models.

Measured behind the proxy, parsing each line into the SDK's message union and dumping models
back cost more than the rest of forwarding (on a busy machine, cold, ~50-130 us a step). So the
fast path reads a line with the standard parser, takes it only when it has exactly the shape it
knows, and hands anything else to the SDK's own parsing as before. What decides a call (its
name and arguments) and what the audit records still come from one parse of the line.

``NaN`` and the infinities are not JSON, though Python's parser reads them (and pydantic's
dumps them as ``null``): such a line is reported as ``NotJSON`` so the caller can refuse it
instead of letting the policy judge one value and the upstream receive another.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import pydantic_core


class NotJSON(ValueError):
    """The line holds NaN, Infinity or -Infinity."""


def _constant(name: str) -> NoReturn:
    raise NotJSON(name)


def load(line: bytes) -> Any:
    """One JSON value; ``NotJSON`` for the non-JSON numbers, ``ValueError`` for anything else
    that is not UTF-8 JSON."""
    return json.loads(line.decode("utf-8"), parse_constant=_constant)


def load_loose(line: bytes) -> Any:
    """As ``load``, but reading NaN and the infinities (to learn what a refused line was)."""
    return json.loads(line.decode("utf-8"))


def dump(message: dict[str, Any]) -> bytes:
    """One message as a line (the encoder pydantic uses for the SDK's models)."""
    return pydantic_core.to_json(message) + b"\n"
