"""Executors. Plugin distributions (aegis-httpx, aegis-langchain, ...) add modules here."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
