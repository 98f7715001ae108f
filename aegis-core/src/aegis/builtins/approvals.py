"""Built-in approvals (placeholder, filled in by the approvals work)."""
