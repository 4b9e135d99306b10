"""What FilterCriteria costs the trigger: records/s through the consumer thread with and without a filter.

Prefills a topic with flight-state JSON records on the real broker, then drains it twice in new groups
with a function stub that answers at once (so the trigger's own path is measured, not Lambda): once
without FilterCriteria, once with a filter every record must be parsed for (on_ground false, altitude
numeric range; about three records in four match). Prints records/s for each and the ratio.

    .venv/bin/python -m infra.bench.filter_cost [--records 200000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid

from kafka import KafkaAdminClient, KafkaProducer

from infra.bench.kafka_load import create_topic
from pipeline_common.kafka_client import KafkaSettings
from trigger import Trigger, TriggerConfig
from trigger.invoker import InvokeResult

FILTER = {"Filters": [{"Pattern": json.dumps({"value": {"on_ground": [False],
                                                         "baro_altitude": [{"numeric": [">", 1000]}]}})}]}


def prefill(kafka: KafkaSettings, topic: str, records: int) -> None:
    create_topic(kafka, topic, 6)
    producer = KafkaProducer(linger_ms=20, batch_size=256 * 1024, acks=1, **kafka.client_kwargs())
    rng = random.Random(7)
    for i in range(records):
        state = {"icao24": f"{i % 40000:06x}", "callsign": f"DLH{i % 900:03d}  ", "origin_country": "Germany",
                 "time_position": 1_700_000_000 + i, "longitude": rng.uniform(-180, 180),
                 "latitude": rng.uniform(-90, 90), "baro_altitude": rng.uniform(0, 12000),
                 "on_ground": rng.random() < 0.2, "velocity": rng.uniform(0, 280), "true_track": rng.uniform(0, 360)}
        producer.send(topic, key=state["icao24"].encode(), value=json.dumps(state).encode())
    producer.flush()
    producer.close()


def drain(topic: str, records: int, filter_criteria) -> tuple[float, object]:
    config = TriggerConfig.from_env(topic=topic, group_id=f"bench-filter-{uuid.uuid4().hex[:6]}", dlq_topic="none",
                                    batch_size=1000, maximum_batching_window_s=0.0, status_interval_s=60,
                                    filter_criteria=filter_criteria)
    trigger = Trigger(config, invoker=lambda payload: InvokeResult("ok", b"null"), destinations=[])
    started = time.perf_counter()
    stats = trigger.run(until_idle_s=2, duration=600)
    elapsed = time.perf_counter() - started - 2  # the idle wait is not work
    assert stats.consumed == records, (stats.consumed, records)
    return records / elapsed, stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each; the medians are compared")
    args = p.parse_args()
    kafka = KafkaSettings.from_env()
    topic = f"bench-filter-{uuid.uuid4().hex[:6]}"
    prefill(kafka, topic, args.records)
    try:
        plain, filtered = [], []
        for _ in range(args.rounds):
            plain.append(drain(topic, args.records, None)[0])
            rate, stats = drain(topic, args.records, FILTER)
            filtered.append(rate)
        p_med, f_med = statistics.median(plain), statistics.median(filtered)
        print(f"records: {args.records}, matched by the filter: {stats.succeeded}, rounds: {args.rounds}")
        print(f"without FilterCriteria: {p_med:,.0f} records/s (runs: {', '.join(f'{r:,.0f}' for r in plain)})")
        print(f"with FilterCriteria:    {f_med:,.0f} records/s (runs: {', '.join(f'{r:,.0f}' for r in filtered)}); "
              f"ratio of medians {f_med / p_med:.2f}")
    finally:
        admin = KafkaAdminClient(**kafka.client_kwargs())
        admin.delete_topics([topic])
        admin.close()


if __name__ == "__main__":
    main()
