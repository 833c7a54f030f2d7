"""Benchmarks behind bench/run; each returns a JSON-ready figure."""
