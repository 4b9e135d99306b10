"""`make demo` and watching what the pipeline did: the run, and the recounts it is checked against
(`make notifications`, `make count-messages`)."""
