"""Ed25519 signing keys for audit checkpoints (``aegis keys generate``).

The private key signs checkpoints and stays with whoever runs the store; the public key, with the
checkpoints, is everything a third party needs to check the trail. Keys are PEM files (PKCS#8
private, SubjectPublicKeyInfo public) so that OpenSSL and other tools read them too. A key's id is
the first 16 hex digits of SHA-256 over its raw 32 public bytes; a checkpoint names the key that
signed it, so a verifier holding the wrong key is told so instead of "bad signature".

``cryptography`` is a dependency of agent-aegis-core (imported only when a key is used, so it
costs nothing at start-up); if an installation lacks it, the error says what to install.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aegis.errors import AuditError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["generate_keypair", "key_id", "load_private_key", "load_public_key"]

MISSING = (
    "signed audit checkpoints need the 'cryptography' package, a dependency of "
    "agent-aegis-core that is missing here (pip install 'cryptography>=42')"
)


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise AuditError(MISSING) from exc
    return ed25519


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_key: Ed25519PublicKey) -> str:
    ser = _serialization()
    raw = public_key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> str:
    """Write a new key pair (private file mode 0600); returns the key id.

    Refuses to replace an existing private key unless ``overwrite``: losing a signing key is
    recoverable, silently replacing the one an auditor already trusts is not.
    """
    ed = _ed25519()
    ser = _serialization()
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise AuditError(f"{path} already exists (pass --force to replace it)")
    private = ed.Ed25519PrivateKey.generate()
    pem = private.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    public = private.public_key()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(
        public.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    )
    return key_id(public)


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    ed = _ed25519()
    ser = _serialization()
    data = _read(path, "private key")
    try:
        key = ser.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed.Ed25519PrivateKey):
        raise AuditError(f"{path}: not an Ed25519 key (aegis keys generate makes one)")
    return cast("Ed25519PrivateKey", key)


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """A public key file; a private key file is accepted too (its public half is used)."""
    ed = _ed25519()
    ser = _serialization()
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = ser.load_pem_public_key(data)
    except ValueError as exc:
        raise AuditError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, ed.Ed25519PublicKey):
        raise AuditError(f"{path}: not an Ed25519 public key")
    return cast("Ed25519PublicKey", key)


def _read(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
