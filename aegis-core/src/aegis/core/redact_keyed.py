"""Keyed redaction: a redacted value is stored as its HMAC, so it can be asked about later.

Plain redaction answers "what was the card number?" with ``[REDACTED]`` and so can never answer
"was card 4111 1111 1111 1111 used?". With a per-store secret key (HashiCorp Vault's audit
device does the same), each redacted value becomes ``hmac-sha256:<hex>``: the trail still holds
no secret, equal values give equal tags (so they can be correlated), and whoever holds the key
can compute the tag of a value they already know (``aegis audit hash VALUE``) and look for it.
Without the key, a tag reveals nothing, not even for guessable values such as a PIN.

What is tagged: the whole value of a secret-named key (strings and numbers by their text, so
``1234`` and ``"1234"`` give one tag; anything else by its compact JSON), and each
credential-shaped substring that the value patterns find. The key is 32 random bytes kept in a
file (``aegis keys field-key``), never in the database it protects.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

import attrs

from aegis.core.redact import Redactor

PREFIX = "hmac-sha256:"


def field_tag(key: bytes, value: Any) -> str:
    """The stored form of one redacted value under ``key``."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return PREFIX + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _key_bytes(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) < 16:
        raise ValueError("KeyedRedactor needs a key of at least 16 bytes (aegis keys field-key)")
    return value


@attrs.frozen
class KeyedRedactor(Redactor):
    """A ``Redactor`` that stores ``hmac-sha256:<hex>`` instead of ``[REDACTED]``."""

    key: bytes = attrs.field(default=b"", converter=_key_bytes, repr=False, kw_only=True)

    def replacement_for(self, secret: str) -> str:
        return field_tag(self.key, secret)

    def secret_value(self, value: Any) -> Any:
        return field_tag(self.key, value)


def generate_field_key(path: Path, *, overwrite: bool = False) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def load_field_key(path: Path | str) -> bytes:
    """A key file as written by ``generate_field_key`` (hex text)."""
    text = Path(path).read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a field key (expected hex text)") from None
    return _key_bytes(key)
