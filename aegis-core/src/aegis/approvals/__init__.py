"""Approval channels. Plugin distributions (agent-aegis-slack, -discord, -telegram, -webhook,
-email) add modules here: ``aegis.approvals.slack`` ... (the contract is in aegis.hookspecs)."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
