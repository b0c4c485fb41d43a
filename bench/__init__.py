"""Benchmarks and the demo: `make bench`, `make demo` (run from the repository root)."""
