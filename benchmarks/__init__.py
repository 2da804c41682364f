"""Benchmarks, each runnable as `python -m benchmarks.<name>`; their figures live in docs/performance.md."""
