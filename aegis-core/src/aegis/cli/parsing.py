"""Turning command-line strings into values, with errors a user can act on.

Every function here raises ``CliError`` (exit code 2) naming the offending argument, so a typo
on the command line never surfaces as a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any

from aegis.cli.errors import CliError

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_action_spec(spec: str) -> tuple[str, str]:
    """``type:target`` → (type, target). Only the first colon splits, so targets may hold
    colons (``get:https://example.com``)."""
    action_type, sep, target = spec.partition(":")
    if not sep or not action_type.strip() or not target.strip():
        raise CliError(f"action {spec!r}: expected type:target, e.g. read:crm")
    return action_type.strip(), target.strip()


def parse_value(text: str) -> Any:
    """JSON when it parses (``150`` → int, ``true`` → bool, ``[1,2]`` → list), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items: Iterable[str] | None) -> dict[str, Any]:
    """``["count=150", "amount.value=5"]`` → ``{"count": 150, "amount": {"value": 5}}``.

    A dotted key builds nested params, matching the dotted paths conditions use.
    """
    params: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--param {item!r}: expected key=value, e.g. --param count=150")
        parts = key.split(".")
        if any(not p for p in parts):
            raise CliError(f"--param {item!r}: empty segment in key {key!r}")
        node = params
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CliError(f"--param {item!r}: {part!r} already holds a plain value")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise CliError(f"--param {item!r}: {key!r} already holds nested params")
        node[parts[-1]] = parse_value(raw)
    return params


def parse_datetime(text: str, *, option: str) -> dt.datetime:
    """An ISO 8601 date/time; a time without a zone is taken as local time."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{option} {text!r}: expected an ISO date/time, e.g. 2026-03-21T18:30 or "
            "2026-03-21T18:30+01:00"
        ) from None
    if value.tzinfo is None:
        value = value.astimezone()
    return value


def parse_since(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: an ISO date/time, or a span back from now: ``30s``, ``30m``, ``1h``, ``2d``,
    ``1w``."""
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        current = now or dt.datetime.now(dt.UTC)
        try:
            return current - dt.timedelta(seconds=amount * _UNIT_SECONDS[unit])
        except OverflowError:  # further back than the first date there is: everything
            return dt.datetime.min.replace(tzinfo=dt.UTC)
    try:
        return parse_datetime(text, option="--since")
    except CliError:
        raise CliError(
            f"--since {text!r}: expected an ISO date/time (2026-03-21T18:00) or a span like "
            "30m, 1h, 2d"
        ) from None


def set_dotted(document: Any, path: str, value: Any) -> None:
    """Set ``defaults.approval`` or ``rules.0.approval`` inside a round-trip YAML document,
    creating missing mappings, so that ``aegis init --set`` keeps the template's comments."""
    from ruamel.yaml.comments import CommentedMap

    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise CliError(f"--set {path!r}: expected a dotted key like defaults.approval")
    node = document
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise CliError(f"--set {path}: {part!r} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if part not in node:
                node[part] = CommentedMap()
            node = node[part]
        else:
            where = ".".join(parts[:depth])
            raise CliError(f"--set {path}: {where!r} is a plain value, not a mapping or list")
