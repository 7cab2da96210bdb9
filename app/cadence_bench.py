"""Service benchmarks (firing delay, memory over a long run, API latency) — registered with app.bench."""
