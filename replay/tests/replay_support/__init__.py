"""Helpers of the replay tests: generated runs, log tampering, the CLI, a headless browser."""
