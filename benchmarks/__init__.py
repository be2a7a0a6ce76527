"""Benchmarks of the protection path against the raw primitives (see benchmarks/README.md)."""
