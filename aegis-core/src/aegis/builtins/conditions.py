"""Built-in conditions (placeholder, filled in by the conditions work)."""
