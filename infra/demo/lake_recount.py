"""The lake's part of `make demo`: run the archiver beside the trigger and the tracker (its own process and
consumer group, the command `make up` runs), ask it to flush at the end, then reconcile the Iceberg table.

The archiver resumes from the table's own offsets, so it also archives whatever of the topic the table does
not hold yet; the run's rows are told apart by the run's Kafka offset range per partition, the same range
the tracker's recount reads (infra/demo/tracker_recount.py). Read back from this process, never the
archiver's:
  * lake: the run's rows in the positions table == the distinct (icao24, time_position) of the run's
    records in Kafka, key for key; its malformed records are the run's rows of the rejects table.
  * gold: the gold job (lakehouse.gold.build_day) for each UTC day the run's positions fall on; then the
    positions of that day in gold_daily_country == the positions_clean rules recounted here, in Python,
    over the lake rows the job read. The gold tables cover the whole day, the run and anything archived
    before it, so the recount covers the same rows (the table pinned at one metadata file for both).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysFalse, And, BooleanExpression, EqualTo, GreaterThanOrEqual, LessThan, Or

from archiver.settings import ArchiverConfig
from infra.lake.create import ensure_bucket
from infra.progress import printer
from infra.session.parts import command, part_named
from infra.stack import servers as stack
from lakehouse import duck
from lakehouse.catalog import (committed_offsets, ensure_rejects_table, ensure_table, load_catalog,
                               rejects_identifier)
from lakehouse.gold import SILVER, build_day, day_bounds
from lakehouse.settings import LakeSettings
from pipeline_common.kafka_client import KafkaSettings

logger = logging.getLogger(__name__)

say = printer("[demo]")

# The archiver's commit interval during a demo (LAKE_COMMIT_INTERVAL_S for its process only): the run's last
# records reach the table within seconds of the producer stopping, instead of the session's minute.
DEMO_COMMIT_INTERVAL_S = 3.0
LOG_PATH = stack.LOG_DIR / "demo-archiver.log"
GOLD_TABLE = "gold_daily_country"
# The columns the positions_clean rules look at (src/lakehouse/gold.sql), and the key and its tie-breakers.
CLEAN_COLUMNS = ("icao24", "time_position", "ingested_at", "kafka_partition", "kafka_offset", "latitude",
                 "longitude", "baro_altitude", "velocity", "true_track", "vertical_rate")


# ------------------------------------------------------------------ pure: comparisons and the clean rules

@dataclass(frozen=True)
class KeyComparison:
    """The run's rows in the lake against the run's distinct positions in Kafka."""
    rows: int        # rows of the run's offset range in the table
    distinct: int    # distinct (icao24, time_position) among the run's records in Kafka
    missing: int     # keys in Kafka with no row in the table
    extra: int       # keys in the table the run's records do not have
    doubled: int     # rows beyond the first of a key in the table

    @property
    def ok(self) -> bool:
        return self.rows == self.distinct and not (self.missing or self.extra or self.doubled)

    def detail(self) -> str:
        if self.ok:
            return f"{self.rows:,} rows == {self.distinct:,} distinct in Kafka"
        return (f"MISMATCH: {self.rows:,} rows vs {self.distinct:,} distinct in Kafka; {self.missing:,} missing, "
                f"{self.extra:,} not in the run, {self.doubled:,} doubled")


def compare_keys(lake_keys: Iterable[tuple], kafka_keys: set) -> KeyComparison:
    """(icao24, time_position) of every row the table holds for the run, against the run's distinct keys."""
    counts = Counter(lake_keys)
    seen = set(counts)
    return KeyComparison(rows=sum(counts.values()), distinct=len(kafka_keys), missing=len(kafka_keys - seen),
                         extra=len(seen - kafka_keys), doubled=sum(n - 1 for n in counts.values() if n > 1))


def equal_detail(left: int, right: int) -> str:
    return f"{left:,} == {right:,}" if left == right else f"MISMATCH: {left:,} vs {right:,}"


def _between(values: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    return pc.and_kleene(pc.greater_equal(values, low), pc.less_equal(values, high))


def _null_or(values: pa.ChunkedArray, condition: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.or_kleene(pc.is_null(values), condition)


def clean_positions(rows: pa.Table) -> pa.Table:
    """The rows positions_clean keeps (src/lakehouse/gold.sql, the rules of the tracker's 0010_analytics.sql),
    written again with Arrow so that the gold job is checked against something it did not compute: one row
    per (icao24, time_position), the first archived (ingested_at, partition, offset), then the range rules.
    Kleene logic and NULL as false at the end are SQL's WHERE; NaN fails every range, as in DuckDB."""
    if not rows.num_rows:
        return rows
    rows = rows.sort_by([("icao24", "ascending"), ("time_position", "ascending"), ("ingested_at", "ascending"),
                         ("kafka_partition", "ascending"), ("kafka_offset", "ascending")])
    n = rows.num_rows
    if n > 1:
        icao, when = rows.column("icao24"), rows.column("time_position")
        same = pc.and_(pc.equal(icao.slice(1), icao.slice(0, n - 1)), pc.equal(when.slice(1), when.slice(0, n - 1)))
        rows = rows.filter(pa.concat_arrays([pa.array([True]), pc.invert(same.combine_chunks())]))
    col = rows.column
    lat, lon = col("latitude"), col("longitude")
    keep = pc.match_substring_regex(col("icao24"), r"^[0-9a-f]{6}$")
    for condition in (
        _between(lat, -90, 90),
        _between(lon, -180, 180),
        pc.invert(pc.and_kleene(pc.equal(lat, 0), pc.equal(lon, 0))),   # "null island"
        _null_or(col("baro_altitude"), _between(col("baro_altitude"), -460, 18300)),
        _null_or(col("velocity"), _between(col("velocity"), 0, 700)),
        _null_or(col("true_track"), _between(col("true_track"), 0, 360)),
        _null_or(col("vertical_rate"), pc.less_equal(pc.abs(col("vertical_rate")), 160)),
    ):
        keep = pc.and_kleene(keep, condition)
    return rows.filter(pc.fill_null(keep, False))


def utc_dates(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamptz column's UTC dates (Arrow casts the instant in the column's own zone: made UTC first)."""
    return pc.cast(pc.cast(times, pa.timestamp("us", tz="UTC")), pa.date32())


def utc_days(times: pa.ChunkedArray) -> list[date]:
    """The distinct UTC days of a timestamptz column, in order."""
    if not len(times):
        return []
    return sorted(d for d in pc.unique(utc_dates(times)).to_pylist() if d is not None)


def offsets_filter(ranges: Mapping[int, tuple[int, int]], partition_field: str = "kafka_partition",
                   offset_field: str = "kafka_offset") -> BooleanExpression:
    """A PyIceberg row filter for the records at [first, end) of each partition."""
    parts = [And(EqualTo(partition_field, p), GreaterThanOrEqual(offset_field, first), LessThan(offset_field, end))
             for p, (first, end) in sorted(ranges.items()) if end > first]
    if not parts:
        return AlwaysFalse()
    return parts[0] if len(parts) == 1 else Or(*parts)


def caught_up(table_offsets: Mapping[int, int], ranges: Mapping[int, tuple[int, int]]) -> bool:
    """The table holds every partition up to the run's end offset."""
    return all(table_offsets.get(p, 0) >= end for p, (first, end) in ranges.items() if end > first)


def read_run(catalog, table, settings: LakeSettings, topic: str, ranges: Mapping[int, tuple[int, int]],
             kafka_keys: set, columns: tuple[str, ...] = ("icao24", "time_position"),
             ) -> tuple[pa.Table, KeyComparison, int]:
    """The rows of ``table`` in the run's offset ranges (``columns`` of them), compared key for key with the
    run's distinct positions in Kafka, and how many of the run's records the rejects table holds. Shared by
    `make demo` and the soak (infra/soak/lake_rows.py)."""
    rows = table.scan(row_filter=offsets_filter(ranges), selected_fields=columns).to_arrow()
    comparison = compare_keys(zip(rows.column("icao24").to_pylist(), rows.column("time_position").to_pylist()),
                              kafka_keys)
    rejects = catalog.load_table(rejects_identifier(settings)).scan(
        row_filter=And(EqualTo("topic", topic), offsets_filter(ranges, "partition", "offset")),
        selected_fields=("offset",)).to_arrow().num_rows
    return rows, comparison, rejects


# ------------------------------------------------------------------ the archiver process and the read-back

@dataclass
class LakeRecount:
    table: str = ""
    comparison: KeyComparison | None = None
    rejects: int = 0
    malformed: int = 0
    gold: list = field(default_factory=list)   # one dict per UTC day
    archiver_exit: int | None = None
    caught_up_s: float | None = None
    stop_s: float | None = None
    seconds: float | None = None   # the whole lake part of the demo, after the tracker had finished
    error: str | None = None
    checks: list = field(default_factory=list)

    def summary(self, ranges: Mapping[int, tuple[int, int]]) -> dict:
        c = self.comparison
        return {"table": self.table, "rows_of_run": c.rows if c else None,
                "distinct_positions_in_kafka": c.distinct if c else None,
                "missing": c.missing if c else None, "not_in_run": c.extra if c else None,
                "doubled": c.doubled if c else None, "rejects": self.rejects, "malformed_in_kafka": self.malformed,
                "kafka_ranges": {str(p): list(r) for p, r in sorted(ranges.items())},
                "gold": self.gold, "error": self.error, "seconds": self.seconds,
                "archiver": {"exit_code": self.archiver_exit, "caught_up_s": self.caught_up_s,
                             "stop_s": self.stop_s, "commit_interval_s": DEMO_COMMIT_INTERVAL_S,
                             "log": _rel(LOG_PATH)}}


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(stack.ROOT))
    except ValueError:
        return str(path)


class DemoLake:
    def __init__(self, topic: str, kafka: KafkaSettings, run_id: str) -> None:
        self.topic, self.kafka = topic, kafka
        self.group = f"demo-archiver-{run_id}"
        self.settings = LakeSettings.from_env(commit_interval_s=DEMO_COMMIT_INTERVAL_S, group_id=self.group)
        self.proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return ".".join(self.settings.identifier)

    def start(self) -> None:
        """The bucket and tables (as `make deploy-resources` makes them), then the archiver's process. Needs
        PostgreSQL (the catalog): called once the tracker has made sure it runs."""
        ensure_bucket(self.settings)
        catalog = load_catalog(self.settings)
        ensure_table(catalog, self.settings, replace_lost=True)
        ensure_rejects_table(catalog, self.settings, replace_lost=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", KAFKA_TOPIC=self.topic,
                   KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap_servers, LAKE_GROUP_ID=self.group,
                   LAKE_COMMIT_INTERVAL_S=str(DEMO_COMMIT_INTERVAL_S))
        env.setdefault("LOG_FORMAT", "console")
        env.setdefault("KAFKA_CLIENT_LOG", str(stack.LOG_DIR / "kafka-client.log"))
        argv = command(part_named("archiver"), env)  # what `make archiver` (and so `make up`) runs
        LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
        with open(LOG_PATH, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=stack.ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        say(f"archiver (group {self.group}, a commit every {DEMO_COMMIT_INTERVAL_S:g}s) -> Iceberg {self.name}; "
            f"log {_rel(LOG_PATH)}")

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (the archiver commits what it has buffered, then exits 0); SIGKILL past the timeout."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s if timeout_s is not None else _stop_timeout() + 30)
            except subprocess.TimeoutExpired:
                logger.warning("the demo's archiver (pid %s) did not stop after SIGTERM; killed", proc.pid)
                proc.kill()
                proc.wait()
        return proc.returncode

    def finish(self, ranges: Mapping[int, tuple[int, int]], kafka_keys: set, malformed: int,
               timeout_s: float = 120) -> LakeRecount:
        """Wait until the table holds the run's end offsets, SIGTERM the archiver, then reconcile."""
        result = LakeRecount(table=self.name, malformed=malformed)
        began = time.monotonic()
        try:
            catalog = load_catalog(self.settings)
            deadline = began + timeout_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                table = catalog.load_table(self.settings.identifier)
                if caught_up(committed_offsets(table, self.topic), ranges):
                    result.caught_up_s = round(time.monotonic() - began, 1)
                    break
                time.sleep(0.5)
        except Exception as exc:  # noqa: BLE001 - the summary says what failed; the archiver is stopped anyway
            logger.exception("waiting for the archiver failed")
            result.error = f"{type(exc).__name__}: {exc}"
        stopping = time.monotonic()
        result.archiver_exit = self.stop()
        result.stop_s = round(time.monotonic() - stopping, 1)
        if result.error is None:
            try:
                self.reconcile(result, catalog, ranges, kafka_keys)
            except Exception as exc:  # noqa: BLE001
                logger.exception("reconciling the lake failed")
                result.error = f"{type(exc).__name__}: {exc}"
        result.checks = self.checks(result)
        result.seconds = round(time.monotonic() - began, 1)
        return result

    def reconcile(self, result: LakeRecount, catalog, ranges: Mapping[int, tuple[int, int]], kafka_keys: set) -> None:
        """Fill ``result`` from the table as the catalog has it now (one metadata file for every read)."""
        table = catalog.load_table(self.settings.identifier)
        run_rows = self.read_run(result, catalog, table, ranges, kafka_keys)
        self.build_gold(result, catalog, table, run_rows)

    def read_run(self, result: LakeRecount, catalog, table, ranges: Mapping[int, tuple[int, int]],
                 kafka_keys: set) -> pa.Table:
        """The run's rows of ``table`` against ``kafka_keys``, and the run's rejects; returns the rows."""
        run_rows, result.comparison, result.rejects = read_run(catalog, table, self.settings, self.topic, ranges,
                                                               kafka_keys, CLEAN_COLUMNS)
        return run_rows

    def build_gold(self, result: LakeRecount, catalog, table, run_rows: pa.Table) -> None:
        """The gold job for each UTC day of the run's rows, and its total against the clean recount."""
        days = utc_days(run_rows.column("time_position"))
        if not days:
            return
        # The gold job reads the table through a DuckDB view of the metadata file just loaded: the recount
        # below reads the very same rows even if another archiver commits meanwhile.
        con = duck.open_connection()
        try:
            con.execute(duck.s3_secret_from_properties(catalog.properties))
            con.execute(duck.view_sql(self.settings.table, table.metadata_location))
            for day in days:
                started = time.monotonic()
                writes = {w.table: w for w in build_day(self.settings, day, catalog=catalog, con=con)}
                gold = catalog.load_table((self.settings.namespace, GOLD_TABLE)).scan(
                    row_filter=EqualTo("day", day.isoformat()), selected_fields=("positions",),
                    snapshot_id=writes[GOLD_TABLE].snapshot_id).to_arrow()
                start, end = day_bounds(day)
                day_rows = table.scan(row_filter=And(GreaterThanOrEqual("time_position", start.isoformat()),
                                                     LessThan("time_position", end.isoformat())),
                                      selected_fields=CLEAN_COLUMNS).to_arrow()
                run_day = run_rows.filter(pc.equal(utc_dates(run_rows.column("time_position")), day))
                result.gold.append({
                    "day": day.isoformat(),
                    "gold_positions": pc.sum(gold.column("positions")).as_py() or 0,
                    "clean_recount": clean_positions(day_rows).num_rows,
                    "silver_rows": writes[SILVER].rows,
                    "lake_rows_of_day": day_rows.num_rows,
                    "run_rows_of_day": run_day.num_rows,
                    "run_clean_of_day": clean_positions(run_day).num_rows,
                    "seconds": round(time.monotonic() - started, 1)})
        finally:
            con.close()

    def checks(self, r: LakeRecount) -> list[tuple[str, bool, str]]:
        checks = [("lake: the archiver flushed on SIGTERM and exited cleanly", r.archiver_exit == 0,
                   f"exit {r.archiver_exit}, {r.stop_s}s after SIGTERM; table caught up "
                   + (f"{r.caught_up_s}s after the tracker had stored the run" if r.caught_up_s is not None else "NOT in time")
                   + f"; log {_rel(LOG_PATH)}")]
        if r.error is not None:
            return checks + [(f"lake: the run's rows in {self.name} == its distinct positions in Kafka", False,
                              f"MISMATCH: could not read the lake: {r.error}")]
        c = r.comparison
        checks += [
            (f"lake: the run's rows in {self.name} == its distinct positions in Kafka", c.ok, c.detail()),
            (f"lake: the run's malformed records in {self.name}_rejects", r.rejects == r.malformed,
             equal_detail(r.rejects, r.malformed) + " malformed in Kafka"),
        ]
        if not r.gold:
            checks.append(("gold: built for the run's day", False, "MISMATCH: the run has no rows in the lake"))
        for g in r.gold:
            checks.append((f"gold: {GOLD_TABLE} positions of {g['day']} == the positions_clean rules recounted "
                           "over the lake's day", g["gold_positions"] == g["clean_recount"] == g["silver_rows"],
                           equal_detail(g["gold_positions"], g["clean_recount"])
                           + (f", silver {g['silver_rows']:,}" if g["silver_rows"] != g["clean_recount"] else "")
                           + f"; this run's {g['run_clean_of_day']:,} clean of {g['run_rows_of_day']:,}, "
                           f"the day's {g['lake_rows_of_day']:,} rows; {g['seconds']}s"))
        return checks


def _stop_timeout() -> float:
    return ArchiverConfig.from_env().stop_timeout_s
