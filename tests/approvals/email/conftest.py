"""Fixtures for the e-mail channel's tests (the servers and helpers are in email_helpers)."""

from email_helpers import _route_secret, imap, smtp

__all__ = ["_route_secret", "imap", "smtp"]
