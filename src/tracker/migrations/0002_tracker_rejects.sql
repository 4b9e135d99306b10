-- Kafka records the tracker could not turn into a position, with the reason, kept instead of lost.
-- Written in the same transaction as the positions of their batch, before the offsets are committed,
-- so a reject is recorded exactly once (the key is its place in Kafka).
CREATE TABLE tracker_rejects (
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    reason          text        NOT NULL,
    value           bytea,
    rejected_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
