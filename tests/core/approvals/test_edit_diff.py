"""``rules.diff_edits``: what an approver changed in a form of params, by path, so that a
shown ``[REDACTED]`` left alone keeps its real value once ``apply_edits`` applies the edits."""

from __future__ import annotations

import pytest

from aegis.core.redact import REDACTED
from aegis.runtime.approval.rules import apply_edits, diff_edits

REAL = {"wire": {"amount": 5000, "api_key": "sk-live-1", "to": {"iban": "DE1", "ref": "x"}}}
SHOWN = {"wire": {"amount": 5000, "api_key": REDACTED, "to": {"iban": "DE1", "ref": "x"}}}


def test_only_changed_values_come_back_by_dotted_path() -> None:
    sent = {"wire": {"amount": 50, "api_key": REDACTED, "to": {"iban": "DE1", "ref": "y"}}}
    edits = diff_edits(SHOWN, sent)
    assert edits == {"wire.amount": 50, "wire.to.ref": "y"}
    applied = apply_edits(REAL, edits)
    assert applied["wire"] == {
        "amount": 50,
        "api_key": "sk-live-1",
        "to": {"iban": "DE1", "ref": "y"},
    }


def test_nothing_changed_is_no_edit_and_a_new_key_is_one() -> None:
    assert diff_edits(SHOWN, SHOWN) == {}
    assert diff_edits({"a": 1}, {"a": 1, "b": 2}) == {"b": 2}


@pytest.mark.parametrize("sent", [[1, 2], {"wire": {"amount": 1}}, {}])
def test_a_submission_that_drops_params_or_is_not_an_object_is_refused(sent: object) -> None:
    with pytest.raises(ValueError):
        diff_edits(SHOWN, sent)


def test_keys_with_dots_are_replaced_whole_not_addressed() -> None:
    shown = {"headers": {"x.trace": "1", "auth": REDACTED}}
    edits = diff_edits(shown, {"headers": {"x.trace": "2", "auth": REDACTED}})
    assert edits == {"headers": {"x.trace": "2", "auth": REDACTED}}  # the core then refuses it
