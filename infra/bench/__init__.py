"""Benchmarks of the pipeline on the native stack: `python -m infra.bench.run` (make bench)."""
