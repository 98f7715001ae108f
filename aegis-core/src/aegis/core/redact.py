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
  matching text is replaced, so ``"curl -H 'Bearer abc'"`` keeps its shape.

Both lists are extendable (``Redactor(extra_keys=..., extra_patterns=...)``) and the whole thing
can be turned off (``Redactor.disabled()``) for stores that must keep params verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",
)

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
    _values: re.Pattern[str] | None = attrs.field(init=False, repr=False, eq=False)
    _key_cache: dict[str, bool] = attrs.field(init=False, repr=False, eq=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        extra = {k.lower() for k in self.extra_keys}
        object.__setattr__(self, "_words", SECRET_KEY_WORDS | extra)
        object.__setattr__(self, "_exact", frozenset(extra))
        # Invalid extra patterns must fail here, at configuration time, not on an action.
        object.__setattr__(
            self, "_values", _compile_patterns((*DEFAULT_VALUE_PATTERNS, *self.extra_patterns))
        )

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
            if len(self._key_cache) < 4096:  # bounded: keys come from agents
                self._key_cache[key] = cached
        return cached

    def redact_text(self, text: str) -> str:
        """Replace credential-shaped substrings of one string."""
        if not self.enabled or self._values is None or not text:
            return text
        return self._values.sub(self.replacement, text)

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
                k: self.replacement
                if isinstance(k, str) and self.is_secret_key(k)
                else self._walk(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value


DEFAULT_REDACTOR = Redactor()
