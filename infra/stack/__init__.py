"""The local stack `make run` starts and `make stop` stops: Kafka, MiniStack and PostgreSQL, run natively."""
