"""Hostile sizes: redaction stays linear, caches are bounded by size, YAML aliases by expansion."""

from __future__ import annotations

import re
import threading
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis import Action, Policy, PolicyError
from aegis.core.redact import DEFAULT_REDACTOR, Redactor, _jwt_spans

#: The JWT pattern as it was (a regex): the scanner must find exactly what it found.
JWT_REGEX = re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")


def _finishes(work: Any, seconds: float = 120.0) -> bool:
    """Run ``work`` in a thread; False if it is still running after ``seconds`` (a hang).

    Not a speed assertion: the quadratic version of the case below needs hours, the linear
    one well under a second, and the bound only tells a hang from an answer.
    """
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(seconds)


@pytest.mark.parametrize(
    "unit",
    ["-eyJaaaa", "-eyJaaaaaaaaaaaa.", "-eyJaaaaaaaaaaaa.bbbbbbbbbb.-eyJ", "eyJ.eyJ."],
)
def test_redaction_of_a_hostile_value_is_linear(unit: str) -> None:
    value = unit * (4_000_000 // len(unit))  # ~4 MB: ten times the 360 kB of the report
    assert _finishes(lambda: DEFAULT_REDACTOR.redact({"v": value, "error": value}))


def test_a_jwt_is_still_redacted_inside_text() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMe"
    text = f"-eyJaaaa-eyJ prefix {token} and -{token}x"
    assert DEFAULT_REDACTOR.redact_text(text) == ("-eyJaaaa-eyJ prefix [REDACTED] and -[REDACTED]")


@settings(max_examples=400)
@given(st.text(alphabet="eyJa.-_ b", max_size=60))
def test_the_jwt_scanner_finds_what_the_regex_found(text: str) -> None:
    assert _jwt_spans(text) == [m.span() for m in JWT_REGEX.finditer(text)]


def _retained_after(work: Any) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_matcher_cache_does_not_keep_huge_names_alive() -> None:
    policy = Policy.from_yaml_string(
        "defaults: {approval: block}\n"
        "rules:\n  - {name: r, match: {type: 'read*'}, approval: auto}\n"
    )

    def many_huge_types() -> None:
        for i in range(40):
            policy.evaluate(Action(f"read_{i}_" + "x" * 1_000_000, "crm"))

    retained = _retained_after(many_huge_types)
    assert retained < 5_000_000, f"{retained} bytes kept after 40 MB of distinct names"
    small = Action("read_contact", "crm")
    policy.evaluate(small)
    assert policy.evaluate(small).matched_rule == "r"


def test_redactor_key_cache_does_not_keep_huge_keys_alive() -> None:
    redactor = Redactor()

    def many_huge_keys() -> None:
        for i in range(40):
            redactor.redact({f"k{i}_" + "x" * 1_000_000: 1})

    retained = _retained_after(many_huge_keys)
    assert retained < 5_000_000, f"{retained} bytes kept after 40 MB of distinct keys"
    assert redactor.redact({"api_key": "v", "n": 1}) == {"api_key": "[REDACTED]", "n": 1}


BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
rules: []
"""


def test_yaml_alias_bomb_is_rejected_with_a_position(tmp_path: Any) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(path)
    message = str(info.value)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", message), message
    assert "alias" in message


def test_big_string_aliased_many_times_is_rejected() -> None:
    text = "x: &x '" + "y" * 100_000 + "'\nl: [" + ", ".join(["*x"] * 200) + "]\nrules: []\n"
    with pytest.raises(PolicyError, match="alias"):
        Policy.from_yaml_string(text, source="big.yaml")


def test_ordinary_anchors_still_work() -> None:
    policy = Policy.from_yaml_string(
        "defaults: {approval: auto}\n"
        "rules:\n"
        "  - &base {name: a, match: {type: 'x*'}, approval: block}\n"
        "  - {<<: *base, name: b}\n"
    )
    assert [r.name for r in policy.rules] == ["a", "b"]


def test_keyed_redactor_tags_every_default_pattern_too() -> None:
    from aegis.core.redact_keyed import PREFIX, KeyedRedactor

    redactor = KeyedRedactor(key=bytes(range(32)))
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMe"
    out = redactor.redact_text(f"jwt {token} then Bearer abcdef0123 and sk-{'a' * 20}")
    assert token not in out and "abcdef0123" not in out and "sk-aaaa" not in out
    assert out.count(PREFIX) == 3


def test_redactor_remembers_only_short_clean_texts() -> None:
    """Short texts found clean come back at once next time; a text with a secret, or a long
    one, is never kept (the cache holds no secret, and its size is bounded)."""
    from aegis.core.redact import MAX_CACHED_TEXT

    redactor = Redactor()
    clean, dirty = "auto-approval handler", "curl -H 'Authorization: Bearer abcdef0123456789'"
    long_clean = "x" * (MAX_CACHED_TEXT + 1)
    for _ in range(2):
        assert redactor.redact_text(clean) == clean
        assert "abcdef0123456789" not in redactor.redact_text(dirty)
        assert redactor.redact_text(long_clean) == long_clean
    assert redactor._clean_texts == {clean}
    for i in range(5000):
        redactor.redact_text(f"note {i}")
    assert len(redactor._clean_texts) == 4096
    assert "abcdef0123456789" not in redactor.redact_text(dirty)
