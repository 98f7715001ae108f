"""Helpers for the policy tests: build policies from YAML snippets, pin the clock."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable

import pytest

from aegis import Policy

# 2024-06-05 is a Wednesday (ISO weekday 3).
WEDNESDAY = dt.date(2024, 6, 5)


def at(hour: int, minute: int = 0, *, day: dt.date = WEDNESDAY, tz: str = "UTC") -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(tz))


@pytest.fixture
def make_policy() -> Callable[[str], Policy]:
    def build(text: str) -> Policy:
        return Policy.from_yaml_string(textwrap.dedent(text), source="policy.yaml")

    return build


@pytest.fixture
def clock() -> Callable[..., dt.datetime]:
    """``clock(18, 30, day=..., tz=...)``: an aware datetime (default: a Wednesday, UTC)."""
    return at
