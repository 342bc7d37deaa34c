"""Benchmarks behind ``warroom bench``: each prints a table and a final JSON line."""
