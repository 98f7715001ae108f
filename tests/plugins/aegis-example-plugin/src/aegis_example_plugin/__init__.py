"""Test-only Aegis plugin; the hooks are in ``aegis_example_plugin.plugin``."""

__version__ = "0.3.1"
