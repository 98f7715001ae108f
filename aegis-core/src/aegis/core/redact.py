"""Keep secrets out of the audit trail.

An audit log is read by many more people (and shipped to many more systems) than the agent's
credentials should ever reach, so params are redacted *before* they are stored or hashed: a
secret never lands on disk, in a sink, or in an export. Two independent nets:

* **Keys** that name a secret (``password``, ``api_key``, ``Authorization``, ``accessToken``,
  ``AWS_SECRET_ACCESS_KEY`` ...): the whole value is replaced, whatever its type. Keys are split
  into words (``snake_case``, ``kebab-case``, ``camelCase``) so ``max_tokens`` or ``author`` are
  *not* caught while ``refresh_token`` and ``authToken`` are.
* **Values** that look like a credential wherever they appear (``Bearer ...``, ``sk-...``, AWS
  access key ids, GitHub/Slack tokens, JWTs, PEM private keys, ``user:password@`` in URLs): the
  matching text is replaced, so ``"curl -H 'Bearer abc'"`` keeps its shape. Every default
  pattern runs in time linear in the text (a hostile param must not stall the event loop that
  redacts it); the one that could not be written so as a regex, JWTs, is a small scanner.

Both lists are extendable (``Redactor(extra_keys=..., extra_patterns=...)``) and the whole thing
can be turned off (``Redactor.disabled()``) for stores that must keep params verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

REDACTED = "[REDACTED]"

#: A key is secret when one of its words is one of these ...
SECRET_KEY_WORDS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "token",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "cookie",
        "bearer",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "signingkey",
        "sessionkey",
        "otp",
        "pin",
    }
)

#: ... or two adjacent words form one of these (``api_key``, ``X-Api-Key``, ``privateKey``).
SECRET_KEY_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("api", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("session", "key"),
        ("client", "secret"),
        ("set", "cookie"),
    }
)

#: Credential-shaped text, redacted wherever it appears in a string value.
DEFAULT_VALUE_PATTERNS: tuple[str, ...] = (
    r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]+=*",
    r"(?i:\bbasic\s+)[A-Za-z0-9+/]{8,}=*",
    r"\bsk-[A-Za-z0-9_\-]{16,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{30,}\b",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",
)

#: For each default pattern, substrings one of which any match contains (lower-case ones are
#: looked for in the lower-cased text). A pattern runs only where its marker occurs: ``in`` is
#: a fast C scan, whereas a pattern starting with ``\b`` is tried at every position.
_MARKERS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("bearer",), True),
    (("basic",), True),
    (("sk-",), False),
    (("AKIA", "ASIA"), False),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), False),
    (("github_pat_",), False),
    (("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"), False),
    (("-----BEGIN ",), False),
    (("://",), False),
)

#: JSON Web Tokens (``eyJ…``, three base64url segments) are found by ``_jwt_spans`` rather than
#: by a regex: as a regex the pattern is quadratic on a long run of ``-eyJaaaa…`` (each ``eyJ``
#: rescans the run to its end looking for the dot), which froze the event loop for seconds.
JWT_MIN_SEGMENT = 8
_JWT_START = re.compile(r"\beyJ")
_B64URL_RUN = re.compile(r"[A-Za-z0-9_\-]+")

#: Keys longer than this are checked every time instead of being cached, so the cache holds
#: at most 4096 keys of this size, whatever agents send.
MAX_CACHED_KEY = 256
#: Longest text whose clean verdict ``Redactor.redact_text`` remembers.
MAX_CACHED_TEXT = 256

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def key_words(key: str) -> list[str]:
    """``"X-Api-Key"`` → ``["x", "api", "key"]``; ``"accessToken"`` → ``["access", "token"]``."""
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def _is_secret_key(key: str, words: frozenset[str], pairs: frozenset[tuple[str, str]]) -> bool:
    parts = key_words(key)
    if not parts:
        return False
    if "".join(parts) in words:
        return True
    for i, part in enumerate(parts):
        if part in words:
            return True
        if i and (parts[i - 1], part) in pairs:
            return True
    return False


def _run_end(text: str, pos: int) -> int:
    found = _B64URL_RUN.match(text, pos)
    return pos if found is None else found.end()


def _jwt_spans(text: str) -> list[tuple[int, int]]:
    """Where ``eyJ<seg>.<seg>.<seg>`` tokens are (each segment at least 8 base64url chars).

    Linear: for every run of base64url characters only its first ``eyJ`` is examined. A
    later ``eyJ`` in the same run shares the run's end, so it can only have a shorter first
    segment and the same dots after it: if the first one is no token, neither is any other.
    """
    spans: list[tuple[int, int]] = []
    pos, size, least = 0, len(text), JWT_MIN_SEGMENT
    while True:
        start = _JWT_START.search(text, pos)
        if start is None:
            return spans
        begin = start.start()
        first_end = _run_end(text, begin)
        pos = first_end  # on failure, the rest of this run cannot start a token either
        if first_end - begin - 3 < least or first_end >= size or text[first_end] != ".":
            continue
        second_end = _run_end(text, first_end + 1)
        if second_end - first_end - 1 < least or second_end >= size or text[second_end] != ".":
            continue
        third_end = _run_end(text, second_end + 1)
        if third_end - second_end - 1 < least:
            continue
        spans.append((begin, third_end))
        pos = third_end


def _replace_spans(
    text: str, spans: list[tuple[int, int]], replacement: Callable[[str], str]
) -> str:
    out: list[str] = []
    last = 0
    for begin, end in spans:
        out.append(text[last:begin])
        out.append(replacement(text[begin:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def _compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [f"(?:{p})" for p in patterns]
    if not parts:
        return None
    return re.compile("|".join(parts))


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,)
    return tuple(str(v) for v in values)


@attrs.frozen
class Redactor:
    """Replaces secret-looking params with ``"[REDACTED]"``; immutable and thread-safe.

    ``extra_keys`` are words (``"ssn"``) or exact keys; ``extra_patterns`` are regular
    expressions for credential-shaped values. ``enabled=False`` returns everything unchanged.
    """

    extra_keys: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    extra_patterns: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    enabled: bool = True
    replacement: str = REDACTED
    _words: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    _exact: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    _defaults: tuple[tuple[tuple[str, ...], bool, re.Pattern[str]], ...] = attrs.field(
        init=False, repr=False, eq=False
    )
    _values: re.Pattern[str] | None = attrs.field(init=False, repr=False, eq=False)
    _key_cache: dict[str, bool] = attrs.field(init=False, repr=False, eq=False, factory=dict)
    #: Short texts seen to hold nothing to redact (a handler's fixed reason, a rule's message):
    #: they come back as they are without running every pattern again. Only texts found
    #: clean are kept, so no secret is ever held here.
    _clean_texts: set[str] = attrs.field(init=False, repr=False, eq=False, factory=set)

    def __attrs_post_init__(self) -> None:
        extra = {k.lower() for k in self.extra_keys}
        object.__setattr__(self, "_words", SECRET_KEY_WORDS | extra)
        object.__setattr__(self, "_exact", frozenset(extra))
        # Invalid extra patterns must fail here, at configuration time, not on an action.
        object.__setattr__(
            self,
            "_defaults",
            tuple(
                (markers, lower, re.compile(pattern))
                for (markers, lower), pattern in zip(_MARKERS, DEFAULT_VALUE_PATTERNS, strict=True)
            ),
        )
        object.__setattr__(self, "_values", _compile_patterns(self.extra_patterns))

    @classmethod
    def disabled(cls) -> Redactor:
        """A redactor that keeps everything verbatim (say so loudly in your deployment notes)."""
        return cls(enabled=False)

    def is_secret_key(self, key: str) -> bool:
        cached = self._key_cache.get(key)
        if cached is None:
            cached = key.lower() in self._exact or _is_secret_key(
                key, self._words, SECRET_KEY_PAIRS
            )
            # Bounded in count and in size: keys come from agents.
            if len(self._key_cache) < 4096 and len(key) <= MAX_CACHED_KEY:
                self._key_cache[key] = cached
        return cached

    def replacement_for(self, secret: str) -> str:
        """What one credential-shaped substring becomes (subclasses may derive it from the
        secret, as the keyed redactor does with an HMAC)."""
        return self.replacement

    def secret_value(self, value: Any) -> Any:
        """What the whole value under a secret key becomes (any JSON value: the keyed redactor
        tags it, so equal values stay findable)."""
        return self.replacement

    def redact_text(self, text: str) -> str:
        """Replace credential-shaped substrings of one string (linear in its length for the
        default patterns; ``extra_patterns`` are the configurer's to keep linear)."""
        if not self.enabled or not text:
            return text
        short = len(text) <= MAX_CACHED_TEXT
        if short and text in self._clean_texts:
            return text
        redacted = self._redact_text(text)
        # Bounded in count and in size, like the key cache: texts come from agents too.
        if short and redacted == text and len(self._clean_texts) < 4096:
            self._clean_texts.add(text)
        return redacted

    def _redact_text(self, text: str) -> str:
        plain = type(self).replacement_for is Redactor.replacement_for
        repl: Any = self.replacement if plain else (lambda m: self.replacement_for(m.group(0)))
        if "eyJ" in text:
            spans = _jwt_spans(text)
            if spans:
                text = _replace_spans(text, spans, self.replacement_for)
        lowered: str | None = None
        for markers, lower, pattern in self._defaults:
            if lower and lowered is None:
                lowered = text.lower()
            haystack = lowered if lower else text
            assert haystack is not None
            if any(marker in haystack for marker in markers):
                text = pattern.sub(repl, text)
                lowered = None  # the text changed
        if self._values is None:
            return text
        return self._values.sub(repl, text)

    def redact(self, value: Any) -> Any:
        """A redacted copy of a JSON-like value (mappings and sequences are walked)."""
        if not self.enabled:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {
                k: self.secret_value(v)
                if isinstance(k, str) and self.is_secret_key(k)
                else self._walk(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value


DEFAULT_REDACTOR = Redactor()
