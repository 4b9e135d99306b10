"""`python -m trigger.lag` (make lag): each mapping's OffsetLag, read from Kafka itself.

For every consumer group (one per declared mapping with --mappings/TRIGGER_MAPPINGS, else
TRIGGER_GROUP_ID) and partition of its topics: the end offset, the committed offset and their
difference, as AWS's OffsetLag metric counts it. Works whether or not the trigger is running.
"""
from __future__ import annotations

import argparse
import sys

from kafka import KafkaConsumer, TopicPartition

from pipeline_common.settings import ConfigError

from .declarations import load_mappings
from .esm_event import partition_key
from .mapping import TRIGGER_MAPPINGS, TriggerConfig


def group_lag(config: TriggerConfig) -> dict[str, tuple[int | None, int]]:
    """{"topic-partition": (committed or None, end offset)} for the mapping's group."""
    # Never subscribes, so reading the group's offsets does not join (or disturb) the group.
    consumer = KafkaConsumer(group_id=config.group_id, enable_auto_commit=False, **config.kafka.client_kwargs())
    try:
        tps = [TopicPartition(t, p) for t in config.topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps) if tps else {}
        return {partition_key(tp.topic, tp.partition): (consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trigger.lag", description=__doc__.splitlines()[0])
    p.add_argument("--mappings", metavar="FILE", help="template or mappings file [TRIGGER_MAPPINGS]")
    args = p.parse_args(argv)
    source = args.mappings or TRIGGER_MAPPINGS.read()
    try:
        configs = load_mappings(source) if source else [TriggerConfig.from_env()]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'group':32} {'partition':24} {'committed':>10} {'end':>10} {'OffsetLag':>10}")
    for config in configs:
        total = 0
        for key, (committed, end) in group_lag(config).items():
            lag = end - (committed or 0)
            total += lag
            print(f"{config.group_id:32} {key:24} {'-' if committed is None else committed:>10} {end:>10} {lag:>10}")
        print(f"{config.group_id:32} {'total':24} {'':>10} {'':>10} {total:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
