"""Aegis's own plugins, registered through the public hooks like any third-party plugin."""
