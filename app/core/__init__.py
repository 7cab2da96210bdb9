"""The pure core: config, errors, timeline, generation and bronze publishing (no web, database, scheduler)."""
