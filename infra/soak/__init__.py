"""`make soak`: the README's typical session for MINUTES, sampled, judged by gates, written to docs/SOAK.md."""
