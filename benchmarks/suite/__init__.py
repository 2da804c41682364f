"""The benchmarks `python -m benchmarks` runs: every module here exports `BENCHMARKS`."""
