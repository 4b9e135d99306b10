"""Watching what the pipeline did, without changing anything: `make count-messages`, `make notifications`,
and the independent recount the demo, the fault tests and the benchmarks check the pipeline against.

  python -m infra.demo.observe count-messages --mins 5     # the function's Published metric, last N minutes
  python -m infra.demo.observe notifications [--max N] [--seconds S] [--pollers N]
                               [--lines-per-s N | --all | --sample N]   # read the demo subscriber queue

The recount does not trust any of the pipeline's counters: it reads the run's records back from Kafka
(``read_topic``) and puts each through the function's own filter (flight_transform.evaluate), which
gives exactly the notifications that must reach SNS.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from flight_domain.flight_transform import InvalidState, evaluate  # the function's own filter
from infra.demo import queue_reader
from infra.deploy.aws_resources import AwsClients, AwsResourceSettings, run_command
from infra.progress import Say, printer
from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.state_codec import content_type_of, decode_state
from sns_batch import MAX_BATCH_BYTES as SNS_MAX_MESSAGE_BYTES

PUBLISHED_METRIC = "Published"


_say_stderr = printer("==>", stderr=True)  # stdout is the feed of messages

# A recount reads whole runs: large fetches, so it is not the slow part of a test.
_READ_FETCH = dict(max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)


# --- count-messages ----------------------------------------------------------------------------------------

def metric_sum(metric: str, start: datetime, end: datetime, settings: AwsResourceSettings | None = None,
               clients: AwsClients | None = None) -> int:
    """Sum of one of the function's custom metrics (Received, InAir, Published, Failed) over [start, end)."""
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    response = clients.cloudwatch.get_metric_statistics(
        Namespace=settings.metrics_namespace, MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": settings.function_name}],
        StartTime=start, EndTime=end, Period=60, Statistics=["Sum"])
    return int(round(sum(point.get("Sum", 0.0) for point in response.get("Datapoints", []))))


def count_messages(mins: int = 1, settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
                   now: datetime | None = None) -> int:
    """Sum of the function's Published metric over the last ``mins`` minutes."""
    if isinstance(mins, bool) or not isinstance(mins, int) or mins < 1:
        raise ValueError(f"mins must be a whole number of minutes >= 1, not {mins!r}")
    # Up to and including the current second (CloudWatch and the emulators compare whole seconds).
    end = (now or datetime.now(timezone.utc)).replace(microsecond=0) + timedelta(seconds=1)
    return metric_sum(PUBLISHED_METRIC, end - timedelta(minutes=mins), end, settings, clients)


# --- notifications -----------------------------------------------------------------------------------------

def notification_text(body: str) -> str:
    """One line per notification: the flight JSON (unwrapped if delivery was not raw)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return " ".join(body.split())
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        return notification_text(doc["Message"])
    return json.dumps(doc, ensure_ascii=False)


def notifications(max_messages: int | None = None, seconds: float | None = None,
                  settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
                  on_message: Callable[[str], None] | None = None, say: Say = _say_stderr, *,
                  pollers: int = queue_reader.DEFAULT_POLLERS, feed: queue_reader.FeedPrinter | None = None,
                  quiet_s: float | None = None) -> int:
    """Read the demo queue with several pollers; each notification (one line) goes to on_message, or
    else to ``feed`` (a FeedPrinter on stdout by default), then it is deleted.

    Stops after max_messages notifications, after ``seconds``, once the queue was empty for ``quiet_s``,
    or on Ctrl-C; with none of them it runs until interrupted. Ends with a line of totals (received,
    deleted, shown). Returns how many notifications were handed over (printed or passed to on_message).
    """
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    queue_url = clients.sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    if on_message is None:
        feed = feed or queue_reader.FeedPrinter("notification")

        def handle(bodies: list[str]) -> int:
            return feed.show(bodies, notification_text)
    else:
        feed = None

        def handle(bodies: list[str]) -> int:
            for body in bodies:
                on_message(notification_text(body))
            return len(bodies)
    say(f"waiting for notifications on {settings.queue_name} ({', '.join(settings.notify_countries)}) with "
        f"{pollers} poller(s); {feed.describe() if feed else 'each one handed on'}; Ctrl-C to stop")
    reader = queue_reader.QueueReader(clients.sqs, queue_url, handle, pollers=pollers, max_messages=max_messages,
                                      seconds=seconds, quiet_s=quiet_s, tick=feed.tick if feed else lambda: None)
    try:
        totals = reader.run()
    finally:
        if feed is not None:
            feed.close()
    handed = reader.accepted
    say(queue_reader.totals_line("notification", totals, handed, reader.interrupted, reader.abandoned))
    return handed


# --- reading a topic back ----------------------------------------------------------------------------------

def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """{partition: end offset} of ``topic`` now ({} for a topic that does not exist)."""
    consumer = KafkaConsumer(**kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        partitions = _partitions(consumer, topic)
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()} if partitions else {}
    finally:
        consumer.close()


def read_topic(kafka: KafkaSettings, topic: str, since_ms: int | None = None,
               timeout_s: float = 120, *, start_offsets: dict[int, int] | None = None,
               until: dict[int, int] | None = None) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` from its beginning (or from the first written at or after ``since_ms``,
    or from ``start_offsets`` {partition: offset}) up to the end offsets it has when the read starts (or
    ``until`` {partition: end offset}); TimeoutError if they cannot all be read in time."""
    consumer = KafkaConsumer(**kafka.client_kwargs(), group_id=None, enable_auto_commit=False, **_READ_FETCH)
    try:
        partitions = _partitions(consumer, topic)
        if not partitions:
            return
        consumer.assign(partitions)
        if until is None:
            ends = consumer.end_offsets(partitions)
        else:
            ends = {tp: until.get(tp.partition, 0) for tp in partitions}
        if start_offsets is not None:
            for tp in partitions:
                consumer.seek(tp, min(start_offsets.get(tp.partition, ends[tp]), ends[tp]))
        elif since_ms is None:
            consumer.seek_to_beginning(*partitions)
        else:
            starts = consumer.offsets_for_times({tp: since_ms for tp in partitions})
            for tp in partitions:
                consumer.seek(tp, starts[tp].offset if starts.get(tp) else ends[tp])
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} back to its end offsets {ends}")
            for tp, records in consumer.poll(timeout_ms=1000, max_records=5000).items():
                yield from (r for r in records if r.offset < ends[tp])
    finally:
        consumer.close()


def records_since(kafka: KafkaSettings, topic: str, since_ms: int) -> int:
    """How many records ``topic`` got at or after ``since_ms``, from offsets alone (nothing is read)."""
    consumer = KafkaConsumer(**kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        partitions = _partitions(consumer, topic)
        if not partitions:
            return 0
        starts = consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = consumer.end_offsets(partitions)
        return sum(ends[tp] - (starts[tp].offset if starts.get(tp) else ends[tp]) for tp in partitions)
    finally:
        consumer.close()


# --- the independent recount -------------------------------------------------------------------------------

def canonical(notification: dict) -> str:
    """A notification as one comparable string (what the subscriber's copy is compared with)."""
    return json.dumps(notification, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Recount:
    """What the records say must happen, by the function's own rules."""
    records: int = 0
    filtered: int = 0                                     # valid, not in the air: no notification
    invalid: dict = field(default_factory=dict)           # (partition, offset) -> why the function rejects it
    too_large: dict = field(default_factory=dict)         # (partition, offset): in the air, but over SNS's limit
    notifications: Counter = field(default_factory=Counter)  # canonical notification -> times it must arrive
    countries: Counter = field(default_factory=Counter)   # origin_country of the deliverable notifications
    unique_states: int = 0

    @property
    def in_air(self) -> int:
        """What the function counts as InAir: every valid airborne state, deliverable or not."""
        return sum(self.notifications.values()) + len(self.too_large)

    def expected_at(self, countries: Iterable[str]) -> int:
        """Notifications a subscriber filtered on these origin countries must receive."""
        wanted = set(countries)
        return sum(n for country, n in self.countries.items() if country in wanted)


def recount(records: Iterable[ConsumerRecord]) -> Recount:
    out, seen = Recount(), set()
    for r in records:
        out.records += 1
        try:
            # JSON or Protobuf by the record's content-type, decoded as the function decodes it.
            state = decode_state(r.value, content_type_of(r.headers)) if r.value is not None else None
            notification, _reason = evaluate(state)
        except (TypeError, ValueError, InvalidState) as exc:  # ValueError covers UndecodableState too
            out.invalid[(r.partition, r.offset)] = str(exc)
            continue
        seen.add((state.get("icao24"), state.get("last_contact"), state.get("time_position")))
        if notification is None:
            out.filtered += 1
        elif len(canonical(notification).encode()) > SNS_MAX_MESSAGE_BYTES:
            # Valid, but no SNS message can carry it: the function must report it failed.
            out.too_large[(r.partition, r.offset)] = "notification over SNS's message size limit"
        else:
            out.notifications[canonical(notification)] += 1
            out.countries[notification["origin_country"]] += 1
    out.unique_states = len(seen)
    return out


# --- CLI ---------------------------------------------------------------------------------------------------

def _positive(kind: type) -> Callable[[str], float]:
    """argparse type: a number (int or float) > 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{value} is not > 0")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.demo.observe", description=__doc__.splitlines()[0])
    AwsResourceSettings.add_flags(parser.add_argument_group("settings (before the command)"))
    commands = parser.add_subparsers(dest="command", required=True)
    count = commands.add_parser("count-messages", help="notifications published in the last N minutes")
    count.add_argument("--mins", type=_positive(int), default=1, help="window in minutes (default 1)")
    watch = commands.add_parser("notifications", help="print each notification the demo subscriber receives")
    watch.add_argument("--max", type=_positive(int), default=None, help="stop after N notifications")
    watch.add_argument("--seconds", type=_positive(float), default=None, help="stop after S seconds")
    queue_reader.add_reader_flags(watch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def count(settings: AwsResourceSettings) -> None:
        total = count_messages(args.mins, settings)
        print(f"{total} notification(s) published to {settings.topic_name} in the last {args.mins} minute(s) "
              f"(CloudWatch {settings.metrics_namespace}/{PUBLISHED_METRIC}, FunctionName={settings.function_name})")

    def tail(settings: AwsResourceSettings) -> None:
        notifications(args.max, args.seconds, settings, pollers=args.pollers,
                      feed=queue_reader.feed_from_args("notification", args))

    command = {"count-messages": count, "notifications": tail}[args.command]
    return run_command(lambda: command(AwsResourceSettings.from_args(args)))


if __name__ == "__main__":
    sys.exit(main())
