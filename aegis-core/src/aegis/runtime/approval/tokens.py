"""Callback tokens: what a channel puts in a button or link instead of a bare request id.

A token is ``<request id>.<MAC>``, the MAC (HMAC-SHA256, 32 hex characters kept) taken over the
id and the digest of the action the request was made for, keyed with a secret stored once per
audit database (``aegis_approval_secret``, made on first use and shared by every process). So a
token cannot be guessed, and one made for a request names no other request or action.

``compact``/``expand``: the same token in 43 base64url characters, for channels whose callback
data is short (Telegram's 64 bytes, Discord's 100-character ``custom_id``). Only the form
changes: the core checks the expanded token exactly as it checks any other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from aegis.errors import AuditError
from aegis.runtime.approval.schema import secret_table

if TYPE_CHECKING:
    from aegis.runtime.approval.store import ApprovalBook


class CallbackTokens:
    """Makes and checks the tokens of one book's requests."""

    def __init__(self, book: ApprovalBook) -> None:
        self._book = book
        self._secret: bytes | None = None

    def make(self, rid: str, digest: str) -> str:
        mac = hmac.new(self._key(), f"{rid}|{digest}".encode(), hashlib.sha256).hexdigest()
        return f"{rid}.{mac[:32]}"

    def check(self, token: str) -> tuple[str | None, str]:
        """(request id, "") for a valid token, (None, why) otherwise."""
        rid, _, mac = token.partition(".")
        if not rid or not mac:
            return None, "not a request token"
        row = self._book._row(rid)
        if row is None:
            return None, "token names no request"
        expected = self.make(rid, row["digest"]).partition(".")[2]
        if not hmac.compare_digest(mac, expected):
            return None, "token does not match the request and its action"
        return rid, ""

    def _key(self) -> bytes:
        """The per-store secret (made on first use; another process may make it at once)."""
        if self._secret is None:
            found = self._read_secret()
            if found is None:
                try:
                    with self._book._tx() as conn:
                        conn.execute(
                            insert(secret_table).values(id=1, secret=secrets.token_hex(32))
                        )
                except AuditError:  # another process created it at the same moment
                    pass
                found = self._read_secret()
            if found is None:
                raise AuditError("approval store: no token secret could be created")
            self._secret = bytes.fromhex(found)
        return self._secret

    def _read_secret(self) -> str | None:
        with self._book._tx() as conn:
            row = conn.execute(select(secret_table.c.secret)).first()
        return None if row is None else str(row[0])


def compact(token: str) -> str:
    """``<32 hex id>.<32 hex mac>`` -> 43 base64url characters (any other form is kept)."""
    rid, _, mac = token.partition(".")
    try:
        raw = bytes.fromhex(rid) + bytes.fromhex(mac)
    except ValueError:
        return token
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() if len(raw) == 32 else token


def expand(ref: str) -> str:
    """The token back from ``compact``; anything else passes through (it names no request,
    which the core records as a refused answer)."""
    if len(ref) != 43 or "." in ref:
        return ref
    try:  # validate: characters outside base64url are an error, not skipped
        raw = base64.b64decode(ref + "=", altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return ref
    return f"{raw[:16].hex()}.{raw[16:].hex()}" if len(raw) == 32 else ref
