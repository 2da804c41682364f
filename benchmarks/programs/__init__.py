"""The processes the benchmarks start: servers and load generators, each runnable with `python -m`."""
