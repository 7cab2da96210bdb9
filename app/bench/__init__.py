"""Benchmarks (`fleetgen bench`): may use every layer; nothing else imports them."""
