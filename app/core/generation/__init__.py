"""Column-wise generation of companies and driver events with quality injection; entry: batch.generate_batch."""
