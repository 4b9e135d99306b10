"""Benchmarks of the pipeline on the native stack: `python infra/bench/run.py` (make bench)."""
