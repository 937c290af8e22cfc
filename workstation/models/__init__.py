"""Model updates: signed metadata, validation gates, lifecycle."""
