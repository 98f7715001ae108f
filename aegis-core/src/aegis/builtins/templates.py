"""Built-in templates (placeholder, filled in by the templates work)."""
