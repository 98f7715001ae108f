"""Result keeps its own fields well-typed, so every consumer can rely on them."""

from __future__ import annotations

import pytest

from aegis import Action, Result, ResultStatus


def test_status_string_becomes_the_enum() -> None:
    assert Result(Action("read", "crm"), "success").status is ResultStatus.SUCCESS  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["done", 1, None])
def test_unknown_status_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        Result(Action("read", "crm"), bad)  # type: ignore[arg-type]


def test_error_and_reason_are_text() -> None:
    r = Result(
        Action("read", "crm"),
        ResultStatus.FAILED,
        error=ValueError("upstream said no"),  # type: ignore[arg-type]
        reason=5,  # type: ignore[arg-type]
    )
    assert r.error == "ValueError: upstream said no" and r.reason == "5"
