"""`make soak`: the typical session (what `make up` runs) for MINUTES, sampled, judged by gates, written to docs/SOAK.md."""
