"""Approval handlers shipped as separate distributions (aegis-slack, ...) add modules here."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
