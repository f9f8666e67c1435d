"""The idempotency engine: one Graph call per (organizer, externalId), whatever the concurrency."""
