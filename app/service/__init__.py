"""The running service: pipeline (claim → generate → publish → commit), scheduler, lifecycle, stats, logs."""
