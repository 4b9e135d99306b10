"""The soak's check of the tracker's history: the rows PostgreSQL holds against the distinct positions in Kafka.

A counter can say "stored" while nothing is committed (issue 20: the tracker logged 1,119 stored and
committed every offset, and PostgreSQL held 0 rows), so the store itself is counted: after the
consumers drained and the tracker stopped, the run's records are read back from Kafka and decoded with
the tracker's own decoder, and the rows are counted over a connection of the soak's own. The recount
is `make demo`'s (infra/demo/tracker_recount.py), run on the soak's offset range; only the verdict is here.
"""
from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from pathlib import Path

from kafka import TopicPartition

from infra.bench.session import json_log
from infra.demo.tracker_recount import DemoTracker, TrackerRecount
from pipeline_common.kafka_client import KafkaSettings

logger = logging.getLogger(__name__)

ROWS_CHECK = "PostgreSQL holds every distinct position in Kafka exactly once"
REJECTS_CHECK = "every malformed record is in tracker_rejects"
OWN_COUNT_CHECK = "the tracker's own count agrees with PostgreSQL"

_STOPPED = re.compile(r"tracker stopped: (\d+) consumed, (\d+) stored, (\d+) duplicates skipped, (\d+) rejected"
                      r"(?:, (\d+) past retention)?(?:, (\d+) maintenance pass)?")


def tracker_summary(log_path: Path) -> dict:
    """The counts of the tracker's last line ("tracker stopped: ..."); {} when it did not write one
    (killed, or still running)."""
    for line in reversed(json_log(log_path)):
        match = _STOPPED.match(line.get("msg", ""))
        if match:
            names = ("consumed", "stored", "duplicates", "rejected", "past_retention", "maintenance_passes")
            return {name: int(value) for name, value in zip(names, match.groups()) if value is not None}
    return {}


def recount(kafka: KafkaSettings, topic: str, start_offsets: dict[int, int], since: datetime) -> TrackerRecount:
    """The demo's recount on the soak's range: the records from `start_offsets` {partition: offset} to the
    topic's end now (the producer has stopped), and the rows ingested since `since` for those offsets."""
    demo = DemoTracker(topic, kafka, "soak")
    demo.starts = {TopicPartition(topic, p): offset for p, offset in start_offsets.items()}
    demo.since = since
    # The demo's own code, so the two cannot count differently; an hour at 1,000/s is ~3.6 M records.
    return demo.recount(timeout_s=600)


def checks(found: TrackerRecount, summary: dict) -> list[tuple[str, bool, str]]:
    """The verdict, with what was expected and what was found."""
    past = summary.get("past_retention", 0)
    why = f"; {past:,} past the retention window were not stored, by policy" if past else ""
    out = [
        (ROWS_CHECK, found.rows == found.distinct_positions,
         f"expected {found.distinct_positions:,} rows (distinct (icao24, time_position) among {found.records:,} "
         f"records), found {found.rows:,}{why}"),
        (REJECTS_CHECK, found.rejects == found.malformed,
         f"expected {found.malformed:,} (malformed records in Kafka), found {found.rejects:,}"),
    ]
    if "stored" in summary:
        out.append((OWN_COUNT_CHECK, summary["stored"] == found.rows,
                    f"the tracker logged {summary['stored']:,} stored, PostgreSQL has {found.rows:,}"))
    else:
        out.append((OWN_COUNT_CHECK, False, f"the tracker reported no count (it did not stop on SIGTERM); "
                                            f"PostgreSQL has {found.rows:,}"))
    return out


def reconcile(kafka: KafkaSettings, topic: str, start_offsets: dict[int, int], since: datetime,
              tracker_log: Path) -> tuple[dict, list[tuple[str, bool, str]], TrackerRecount | None]:
    """The figures for the report, the checks, and the recount itself (its keys and offset ranges are what the
    lake is compared with, infra/soak/lake_rows.py); a recount that cannot be made is a failed check."""
    summary = tracker_summary(tracker_log)
    began = time.monotonic()
    try:
        found = recount(kafka, topic, start_offsets, since)
    except Exception as exc:  # noqa: BLE001 - an unreadable topic or database fails the check, with the reason
        logger.warning("tracker recount failed: %s", exc)
        return ({"error": f"{type(exc).__name__}: {exc}", "tracker_log": summary},
                [(ROWS_CHECK, False, f"could not recount: {type(exc).__name__}: {exc}")], None)
    # How long the read-back took: the demo's recount gives it 120 s, which bounds the soak's length.
    figures = {"records": found.records, "distinct_positions": found.distinct_positions, "rows": found.rows,
               "malformed": found.malformed, "rejects": found.rejects, "tracker_log": summary,
               "recount_s": round(time.monotonic() - began, 1)}
    return figures, checks(found, summary), found
