"""Built-in sinks (placeholder, filled in by the sinks work)."""
