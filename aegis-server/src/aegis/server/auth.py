"""API keys and dashboard sessions: who is calling, and what they may do.

A key is given as ``[NAME=]KEY[:scope+scope][@AGENT]`` (``--api-key``, or comma-separated in
``AEGIS_API_KEYS``). ``KEY`` alone has every scope. Only the SHA-256 of each key is kept once
parsed, and keys are compared by hash in constant time, so neither memory dumps nor logs hold
a usable key. The key's NAME is the approver identity ``key:NAME`` (and ``web:NAME`` for a
dashboard login made with it); a key bound to an AGENT overrides the agent_id a body claims.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable

import attrs

SCOPES: tuple[str, ...] = ("evaluate", "execute", "approve", "audit:read", "admin")
_KEY_CHARS = re.compile(r"^[A-Za-z0-9._~-]{16,512}$")
_NAME_CHARS = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SESSION_SECONDS = 8 * 3600


class AuthError(ValueError):
    """A key specification that cannot be used (the message never contains the key)."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@attrs.frozen
class ApiKey:
    name: str
    key_hash: str = attrs.field(repr=False)
    scopes: frozenset[str]
    agent: str | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


#: The caller when the server runs without keys (loopback only): never an admin.
ANONYMOUS = ApiKey("local", "", frozenset(SCOPES) - {"admin"})


def parse_key(spec: str) -> ApiKey:
    """One ``[NAME=]KEY[:scope+scope][@AGENT]`` specification."""
    text = spec.strip()
    name: str | None = None
    agent: str | None = None
    if "=" in text:
        name, _, text = text.partition("=")
        if not _NAME_CHARS.match(name):
            raise AuthError(f"API key name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if "@" in text:
        text, _, agent = text.rpartition("@")
        if not agent:
            raise AuthError("API key: '@' must be followed by an agent id")
    key, _, scope_text = text.partition(":")
    if not _KEY_CHARS.match(key):
        raise AuthError(
            "API key: a key must be 16-512 characters of letters, digits, '.', '_', '~' or '-'"
        )
    scopes = frozenset(SCOPES) if not scope_text else frozenset(scope_text.split("+"))
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise AuthError(f"API key: unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
    hashed = digest(key)
    return ApiKey(name or f"key-{hashed[:8]}", hashed, scopes, agent)


def parse_keys(specs: Iterable[str]) -> tuple[ApiKey, ...]:
    keys = tuple(parse_key(s) for s in specs if s.strip())
    names = [k.name for k in keys]
    for name in names:
        if names.count(name) > 1:
            raise AuthError(f"API key name {name!r} is given twice")
    return keys


class KeyRing:
    """The configured keys, looked up by hash."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash = {k.key_hash: k for k in keys}
        self._by_name = {k.name: k for k in self._by_hash.values()}

    @property
    def open(self) -> bool:
        """No keys configured: the server is loopback-only and callers are anonymous."""
        return not self._by_hash

    def lookup(self, presented: str) -> ApiKey | None:
        hashed = digest(presented)
        found = self._by_hash.get(hashed)
        # The dict lookup is by hash already; compare again in constant time for good measure.
        if found is not None and hmac.compare_digest(found.key_hash, hashed):
            return found
        return None

    def named(self, name: str) -> ApiKey | None:
        return self._by_name.get(name)


class Sessions:
    """Signed dashboard session cookies (``name.expiry.mac``) and their CSRF tokens.

    The secret is per process unless ``AEGIS_SESSION_SECRET`` is set (several replicas behind
    one load balancer must share it).
    """

    def __init__(self, secret: str | None = None) -> None:
        self._secret = (secret or secrets.token_hex(32)).encode("utf-8")

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, name: str, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_SECONDS)
        body = f"{name}.{expiry}"
        return f"{body}.{self._mac(body)}"

    def verify(self, cookie: str | None, now: float | None = None) -> str | None:
        """The key name a valid, unexpired cookie was issued for."""
        if not cookie or cookie.count(".") < 2:
            return None
        body, _, mac = cookie.rpartition(".")
        name, _, expiry = body.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body)) or not expiry.isdigit():
            return None
        if int(expiry) < (now or time.time()):
            return None
        return name

    def csrf(self, cookie: str) -> str:
        return self._mac(f"csrf|{cookie}")[:40]

    def csrf_ok(self, cookie: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(cookie), token or "")
