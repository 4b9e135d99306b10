"""Data-quality checks of one UTC day across the lake, the tracker's PostgreSQL and Kafka (issue 23), each a
result with what was expected and what was found: `python -m lakehouse.quality --day YYYY-MM-DD`.

    rows.lake_vs_postgresql  distinct (icao24, time_position) of the day: the lake == PostgreSQL
    rows.lake_vs_kafka       ... the lake == the topic's records of the day, when the topic still holds the day
    duplicates.lake          no (icao24, time_position) twice in the lake's raw day
    duplicates.postgresql    ... nor in PostgreSQL's day
    values.silver            no row of the day's silver table (positions_clean) breaks a positions_clean rule
    values.cleaning          silver holds exactly the clean rows of the raw day; what cleaning removed, per rule
    freshness.lake           today only: the newest position in the lake is younger than QUALITY_FRESHNESS_S
    freshness.postgresql     ... in PostgreSQL

Where both still hold them: PostgreSQL only for the days TRACKER_RETENTION_DAYS keeps, Kafka only when no
record of the day can have been deleted by the topic's retention. While the day is still arriving (today,
or within QUALITY_FRESHNESS_S after its midnight) a count compares only the records below the lake's
committed Kafka offsets (the lake's snapshots carry them), so rows the archiver has not committed yet are not
a difference; once the day is settled every position of it must be in the lake. docs/LAKE.md, "Data quality".
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable

from .gold import DAY_POSITIONS, SILVER, day_bounds, load_statements, parse_day
from .settings import QualitySettings

logger = logging.getLogger(__name__)

# The check groups, in the order they run; `checks=` and --checks take a group or one result's full name.
GROUPS = ("rows", "duplicates", "values", "freshness")
NAMES = ("rows.lake_vs_postgresql", "rows.lake_vs_kafka", "duplicates.lake", "duplicates.postgresql",
         "values.silver", "values.cleaning", "freshness.lake", "freshness.postgresql")
# Records of a day are produced once the day has begun; this much earlier covers the clocks of producer and
# broker disagreeing. The Kafka recount starts reading here, and the topic "holds the day" when it still has
# its records from here on.
KAFKA_CLOCK_MARGIN = timedelta(minutes=10)
EXAMPLES = 3  # offending rows named in a result's detail


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. ``skipped``: the check could not apply (detail says why); it counts as ok."""
    name: str
    ok: bool
    expected: object
    found: object
    detail: str = ""
    skipped: bool = False

    def line(self) -> str:
        """One line for a person: name, ok / FAILED / skipped, expected, found, detail."""
        if self.skipped:
            return f"{self.name:<24} skipped  {self.detail}".rstrip()
        status = "ok" if self.ok else "FAILED"
        text = f"{self.name:<24} {status:<7}  expected {self.expected}  found {self.found}"
        return f"{text}  ({self.detail})" if self.detail else text


def failure_message(results: Iterable[CheckResult], day: date | None = None) -> str:
    """'2 of 8 data-quality checks failed for 2026-12-06:' then one line per failing check."""
    results = list(results)
    failed = [r for r in results if not r.ok]
    when = f" for {day}" if day else ""
    lines = [f"{len(failed)} of {len(results)} data-quality checks failed{when}:"]
    for r in failed:
        lines.append(f"  {r.name}: expected {r.expected}, found {r.found}" + (f" ({r.detail})" if r.detail else ""))
    return "\n".join(lines)


class QualityCheckFailed(Exception):
    """At least one check failed; the message names each failing check with its expected and found values."""

    def __init__(self, results: Iterable[CheckResult], day: date | None = None) -> None:
        self.results = list(results)
        self.failures = [r for r in self.results if not r.ok]
        super().__init__(failure_message(self.results, day))


def require_ok(results: Iterable[CheckResult], day: date | None = None) -> list[CheckResult]:
    """The results unchanged when every check passed (or was skipped); QualityCheckFailed otherwise."""
    results = list(results)
    if any(not r.ok for r in results):
        raise QualityCheckFailed(results, day)
    return results


def select(checks: Iterable[str] | str | None) -> tuple[str, ...]:
    """The result names to run from group or full names ('rows,values.silver'); ValueError for an unknown one."""
    if checks is None:
        return NAMES
    wanted = [c.strip() for c in (checks.split(",") if isinstance(checks, str) else checks) if c.strip()]
    unknown = [c for c in wanted if c not in GROUPS and c not in NAMES]
    if unknown or not wanted:
        raise ValueError(f"unknown check {', '.join(unknown) or '(none given)'}: say some of "
                         f"{', '.join(GROUPS)} or {', '.join(NAMES)}")
    return tuple(n for n in NAMES if n in wanted or n.split(".")[0] in wanted)


# ------------------------------------------------------------------ the positions_clean rules

_RULES_BLOCK = re.compile(r"WHERE copy_number = 1\s*\n(.*?)\nORDER BY", re.S)


def clean_rules(statement_sql: str | None = None) -> list[str]:
    """The rules of gold.sql's positions_clean (those of 0010_analytics.sql's view), one SQL condition each,
    read from gold.sql itself so the checks can never drift from the job that cleans."""
    if statement_sql is None:
        statement_sql = next(s.sql for s in load_statements() if s.name == SILVER)
    block = _RULES_BLOCK.search(statement_sql)
    if not block:
        raise ValueError("gold.sql's positions_clean has no 'WHERE copy_number = 1 ... ORDER BY' block")
    rules = []
    for line in block.group(1).splitlines():
        line = line.split("--", 1)[0].strip()
        if line.startswith("AND "):
            rules.append(line[4:].strip())
    if not rules:
        raise ValueError("gold.sql's positions_clean lists no rules")
    return rules


def broken(rule: str) -> str:
    """A row breaks a rule when the rule is not true for it (a NULL latitude breaks `latitude BETWEEN ...`,
    as positions_clean's WHERE drops it)."""
    return f"({rule}) IS NOT TRUE"


# ------------------------------------------------------------------ small pure helpers (unit-tested)

def iso(when: datetime | None) -> str:
    return "none" if when is None else when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def kafka_holds_day(first_retained: dict[int, tuple[int, int | None]], since_ms: int) -> tuple[bool, str]:
    """Does the topic still hold every record produced from ``since_ms`` on? ``first_retained`` is
    {partition: (log start offset, timestamp ms of its first record or None when it holds none)}. A partition
    that never lost a record (start offset 0) holds everything; otherwise its first record must be older."""
    late = {}
    for partition, (start_offset, first_ms) in first_retained.items():
        if start_offset == 0:
            continue
        if first_ms is None or first_ms > since_ms:
            late[partition] = first_ms
    if not late:
        return True, ""
    partition, first_ms = max(late.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))
    if first_ms is None:
        return False, (f"skipped: topic retention deleted every record of partition {partition} "
                       f"(its log starts at offset {first_retained[partition][0]})")
    return False, (f"skipped: topic retention starts at "
                   f"{iso(datetime.fromtimestamp(first_ms / 1000, timezone.utc))} (partition {partition}), "
                   f"after {iso(datetime.fromtimestamp(since_ms / 1000, timezone.utc))}")


def age_result(name: str, newest: datetime | None, now: datetime, bound_s: float, where: str) -> CheckResult:
    """freshness.*: the newest position of today younger than ``bound_s``."""
    expected = f"newest position younger than {bound_s:g} s"
    if newest is None:
        return CheckResult(name, False, expected, "no position of today", f"{where} holds none yet")
    age = (now - newest).total_seconds()
    return CheckResult(name, age <= bound_s, expected, f"{age:.0f} s old", f"newest {iso(newest)} in {where}")


def count_result(name: str, expected: int, found: int, detail: str) -> CheckResult:
    return CheckResult(name, expected == found, expected, found, detail)


# ------------------------------------------------------------------ the day's sources

def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Day:
    """One run's view of the day: a DuckDB connection over the lake (raw day as the temp view
    ``day_positions``, as gold.py makes it), the lake's committed offsets, PostgreSQL on demand."""

    def __init__(self, day: date, settings: QualitySettings, now: datetime) -> None:
        self.day, self.settings, self.now = day, settings, now
        self.start, self.end = day_bounds(day)
        self.today = now.astimezone(timezone.utc).date() == day
        # Past this moment no position of the day is still in flight: every one must be archived by now.
        self.settled = now >= self.end + timedelta(seconds=settings.freshness_s)
        self._con = None
        self._offsets: dict[int, int] | None = None
        self._views: dict[str, str] = {}

    # --- the lake
    @property
    def con(self):
        if self._con is None:
            from .catalog import load_catalog
            from .duck import open_connection, refresh_views, s3_secret_from_properties

            lake = self.settings.lake
            self._catalog = load_catalog(lake)
            con = open_connection()
            con.execute(s3_secret_from_properties(self._catalog.properties))
            self._views = refresh_views(con, self._catalog, lake)
            if lake.table not in self._views:
                con.close()
                raise LookupError(f"the lake has no table {lake.namespace}.{lake.table} (make deploy-resources)")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {DAY_POSITIONS} AS SELECT * FROM {lake.table} "
                        f"WHERE {self.time_filter()}")
            self._con = con
        return self._con

    def time_filter(self) -> str:
        return (f"time_position >= TIMESTAMPTZ {_quote(self.start.isoformat())} "
                f"AND time_position < TIMESTAMPTZ {_quote(self.end.isoformat())}")

    def has_table(self, name: str) -> bool:
        self.con  # noqa: B018 - loads the views
        return name in self._views

    @property
    def lake_offsets(self) -> dict[int, int]:
        """{partition: next offset} the lake's positions table holds ({}: none recorded)."""
        if self._offsets is None:
            from .catalog import committed_offsets, positions_table

            self.con  # noqa: B018 - loads the catalog
            self._offsets = committed_offsets(positions_table(self.settings.lake, self._catalog), self.settings.topic)
        return self._offsets

    def lake_distinct(self) -> int:
        return self.con.execute(f"SELECT count(*) FROM (SELECT DISTINCT icao24, time_position FROM {DAY_POSITIONS})"
                                ).fetchone()[0]

    # --- PostgreSQL
    def pg(self):
        from tracker.store import connect

        return connect(self.settings.database, "lake-quality")

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


# ------------------------------------------------------------------ rows

def _offsets_text(offsets: dict[int, int], sep: str = "<") -> str:
    """{0: 12, 1: 7} -> 'p0<12, p1<7' (below the lake's next offsets) or, with sep=':', 'p0:12, p1:7'."""
    return ", ".join(f"p{p}{sep}{o}" for p, o in sorted(offsets.items())) or "none"


def check_rows_postgresql(d: _Day) -> CheckResult:
    from tracker.store import oldest_kept_day

    name = "rows.lake_vs_postgresql"
    oldest = oldest_kept_day(d.settings.retention_days, d.now.astimezone(timezone.utc).date())
    if oldest is not None and d.day < oldest:
        return CheckResult(name, True, None, None, f"skipped: PostgreSQL keeps days from {oldest} on "
                           f"(TRACKER_RETENTION_DAYS={d.settings.retention_days})", skipped=True)
    lake = d.lake_distinct()
    offsets = d.lake_offsets
    with d.pg() as conn:
        total = conn.execute("SELECT count(*) FROM positions WHERE time_position >= %s AND time_position < %s",
                             (d.start, d.end)).fetchone()[0]
        if offsets:
            # The row PostgreSQL keeps for a key is its first record (ON CONFLICT DO NOTHING), and so is the lake's.
            within = conn.execute(
                "SELECT count(*) FROM positions p JOIN unnest(%s::int[], %s::bigint[]) AS o(part, next_offset) "
                "ON p.kafka_partition = o.part AND p.kafka_offset < o.next_offset "
                "WHERE p.time_position >= %s AND p.time_position < %s",
                (list(offsets), list(offsets.values()), d.start, d.end)).fetchone()[0]
        else:
            within = total
    beyond = total - within
    if d.settled:
        detail = f"distinct positions of {d.day}: lake {lake}, PostgreSQL {total}"
        if beyond:
            detail += f"; {beyond} of PostgreSQL's are past the lake's committed offsets ({_offsets_text(offsets)}): " \
                      "not archived"
        return count_result(name, lake, total, detail)
    detail = f"distinct positions of {d.day} below the lake's committed offsets: lake {lake}, PostgreSQL {within}"
    if beyond:
        detail += f"; {beyond} more in PostgreSQL not committed to the lake yet (the day is still arriving)"
    return count_result(name, lake, within, detail)


_KAFKA_FETCH = dict(max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
_KEY_BATCH = 200_000


def check_rows_kafka(d: _Day) -> CheckResult:
    """The topic's records of the day read back and decoded with the tracker's own decoder (as the archiver
    decodes them); their distinct keys, held in DuckDB (a day of keys need not fit in Python's memory)."""
    import pyarrow as pa
    from kafka import KafkaConsumer, TopicPartition

    from tracker.records import InvalidRecord, decode

    name, s = "rows.lake_vs_kafka", d.settings
    since_ms = int((d.start - KAFKA_CLOCK_MARGIN).timestamp() * 1000)
    consumer = KafkaConsumer(**s.kafka.client_kwargs(), group_id=None, enable_auto_commit=False, **_KAFKA_FETCH)
    try:
        tps = [TopicPartition(s.topic, p) for p in sorted(consumer.partitions_for_topic(s.topic) or ())]
        if not tps:
            return CheckResult(name, True, None, None, f"skipped: topic {s.topic} does not exist", skipped=True)
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        firsts = consumer.offsets_for_times({tp: 0 for tp in tps})
        holds, why = kafka_holds_day({tp.partition: (starts[tp], firsts[tp].timestamp if firsts.get(tp) else None)
                                      for tp in tps}, since_ms)
        if not holds:
            return CheckResult(name, True, None, None, why, skipped=True)
        offsets = d.lake_offsets
        lake_end = {tp: min(ends[tp], offsets.get(tp.partition, 0)) if offsets else ends[tp] for tp in tps}
        # Settled: read to the end (a record the lake missed counts). Still arriving: to the lake's offsets.
        stop = ends if d.settled else lake_end
        froms = consumer.offsets_for_times({tp: since_ms for tp in tps})
        begin = {tp: froms[tp].offset if froms.get(tp) else ends[tp] for tp in tps}
        con = d.con
        con.execute("CREATE OR REPLACE TEMP TABLE quality_kafka_keys "
                    "(icao24 VARCHAR, time_position TIMESTAMPTZ, within_lake BOOLEAN)")
        keys: list[tuple] = []

        def flush() -> None:
            if keys:
                batch = pa.table({"icao24": [k[0] for k in keys], "time_position": [k[1] for k in keys],
                                  "within_lake": [k[2] for k in keys]})
                con.register("quality_kafka_batch", batch)
                con.execute("INSERT INTO quality_kafka_keys SELECT * FROM quality_kafka_batch")
                con.unregister("quality_kafka_batch")
                keys.clear()

        reading = [tp for tp in tps if begin[tp] < stop[tp]]
        records = 0
        if reading:
            consumer.assign(reading)
            for tp in reading:
                consumer.seek(tp, begin[tp])
            deadline = time.monotonic() + s.kafka_timeout_s
            while any(consumer.position(tp) < stop[tp] for tp in reading):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {s.topic} from {begin} to {stop} within "
                                       f"QUALITY_KAFKA_TIMEOUT_S={s.kafka_timeout_s:g} s")
                for tp, batch in consumer.poll(timeout_ms=1000, max_records=5000).items():
                    for r in batch:
                        if r.offset >= stop[tp]:
                            continue
                        records += 1
                        try:
                            p = decode(r.value, r.partition, r.offset, r.headers)
                        except InvalidRecord:
                            continue  # the archiver keeps it in the rejects table, not in positions
                        if d.start <= p.time_position < d.end:
                            keys.append((p.icao24, p.time_position, r.offset < lake_end[tp]))
                if len(keys) >= _KEY_BATCH:
                    flush()
        flush()
    finally:
        consumer.close()
    kafka_total, kafka_within = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE within) FROM (SELECT icao24, time_position, "
        "bool_or(within_lake) AS within FROM quality_kafka_keys GROUP BY ALL)").fetchone()
    lake = d.lake_distinct()
    expected = kafka_total if d.settled else kafka_within
    detail = (f"distinct positions of {d.day} in {records} records of {s.topic} "
              f"(from offsets {_offsets_text({tp.partition: begin[tp] for tp in tps}, ':')}): Kafka {expected}, lake {lake}")
    if not d.settled and kafka_total > kafka_within:
        detail += f"; {kafka_total - kafka_within} more in Kafka past the lake's committed offsets (still arriving)"
    missing = con.execute(f"SELECT icao24, time_position FROM (SELECT DISTINCT icao24, time_position FROM "
                          f"quality_kafka_keys {'' if d.settled else 'WHERE within_lake'}) k "
                          f"ANTI JOIN {DAY_POSITIONS} USING (icao24, time_position) "
                          f"ORDER BY 1, 2 LIMIT {EXAMPLES}").fetchall()
    if missing:
        detail += "; not in the lake, e.g. " + ", ".join(f"{i} {iso(t)}" for i, t in missing)
    return count_result(name, expected, lake, detail)


# ------------------------------------------------------------------ duplicates

def _duplicates_result(name: str, rows: list[tuple], where: str) -> CheckResult:
    """rows: (icao24, time_position, copies, total duplicate keys) of the first few duplicated keys."""
    keys = rows[0][3] if rows else 0
    detail = f"keys stored more than once in {where}"
    if rows:
        detail += ", e.g. " + ", ".join(f"{i} {iso(t)} x{n}" for i, t, n, _ in rows)
    return CheckResult(name, keys == 0, 0, keys, detail)


def check_duplicates_lake(d: _Day) -> CheckResult:
    rows = d.con.execute(
        f"SELECT icao24, time_position, copies, count(*) OVER () FROM (SELECT icao24, time_position, "
        f"count(*) AS copies FROM {DAY_POSITIONS} GROUP BY ALL HAVING count(*) > 1) "
        f"ORDER BY copies DESC, icao24, time_position LIMIT {EXAMPLES}").fetchall()
    return _duplicates_result("duplicates.lake", rows, f"the lake's {d.settings.lake.table} on {d.day}")


def check_duplicates_postgresql(d: _Day) -> CheckResult:
    with d.pg() as conn:
        rows = conn.execute(
            "SELECT icao24, time_position, copies, count(*) OVER () FROM (SELECT icao24, time_position, "
            "count(*) AS copies FROM positions WHERE time_position >= %s AND time_position < %s "
            "GROUP BY 1, 2 HAVING count(*) > 1) AS dup ORDER BY copies DESC, icao24, time_position LIMIT %s",
            (d.start, d.end, EXAMPLES)).fetchall()
    return _duplicates_result("duplicates.postgresql", rows, f"PostgreSQL's positions on {d.day}")


# ------------------------------------------------------------------ values

_SHOWN_COLUMNS = ("latitude", "longitude", "baro_altitude", "velocity", "true_track", "vertical_rate")


def _columns_of(rule: str) -> list[str]:
    return [c for c in _SHOWN_COLUMNS if re.search(rf"\b{c}\b", rule)] or ["icao24"]


def check_values_silver(d: _Day) -> CheckResult:
    """Every silver row of the day keeps every positions_clean rule: a row here that breaks one escaped the
    cleaning (or was written by something else than `make lake-gold`)."""
    name, rules = "values.silver", clean_rules()
    expected = "0 rows breaking a positions_clean rule"
    if not d.has_table(SILVER):
        return CheckResult(name, False, expected, f"no {SILVER} table",
                           f"build the day first: make lake-gold DAY={d.day}")
    con = d.con
    where = f"FROM {SILVER} WHERE {d.time_filter()}"
    counts = con.execute("SELECT count(*), " + ", ".join(f"count(*) FILTER (WHERE {broken(r)})" for r in rules)
                         + f" {where}").fetchone()
    rows, per_rule = counts[0], counts[1:]
    bad_total = con.execute(f"SELECT count(*) {where} AND ({' OR '.join(broken(r) for r in rules)})").fetchone()[0]
    reasons = []
    for rule, n in zip(rules, per_rule):
        if n:
            cols = _columns_of(rule)
            example = con.execute(f"SELECT icao24, time_position, {', '.join(cols)} {where} AND {broken(rule)} "
                                  f"ORDER BY icao24, time_position LIMIT 1").fetchone()
            shown = ", ".join(f"{c}={v}" for c, v in zip(cols, example[2:]))
            reasons.append(f"{n} break `{rule}`, e.g. {example[0]} {iso(example[1])} {shown}")
    detail = f"{rows} silver rows of {d.day}" + ("; " + "; ".join(reasons) if reasons else "")
    return CheckResult(name, bad_total == 0, expected, f"{bad_total} rows", detail)


def check_values_cleaning(d: _Day) -> CheckResult:
    """gold.sql's own positions_clean statement over the raw day, counted here, against the silver table; the
    rows cleaning removed (later copies of a key, each rule) are reported, never a failure."""
    name, rules = "values.cleaning", clean_rules()
    con = d.con
    statement = next(s.sql for s in load_statements() if s.name == SILVER)
    clean = con.execute(f"SELECT count(*) FROM ({statement})").fetchone()[0]
    raw, distinct = con.execute(f"SELECT count(*), count(DISTINCT (icao24, time_position)) FROM {DAY_POSITIONS}"
                                ).fetchone()
    per_rule = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {broken(r)})" for r in rules) +
        f" FROM (SELECT *, row_number() OVER (PARTITION BY icao24, time_position ORDER BY ingested_at, "
        f"kafka_partition, kafka_offset) AS copy_number FROM {DAY_POSITIONS}) WHERE copy_number = 1").fetchone()
    removed = [f"`{r}`: {n}" for r, n in zip(rules, per_rule) if n]
    detail = (f"cleaning removed {raw - clean} of {raw} raw rows of {d.day}: {raw - distinct} later copies of a key"
              + (", by rule " + ", ".join(removed) if removed else ", none by rule"))
    silver = (con.execute(f"SELECT count(*) FROM {SILVER} WHERE {d.time_filter()}").fetchone()[0]
              if d.has_table(SILVER) else 0)
    if not d.has_table(SILVER) or (silver == 0 and clean):
        detail += f"; silver not built for the day: make lake-gold DAY={d.day}"
    if d.today and silver != clean:
        return CheckResult(name, True, clean, silver, f"skipped: today's raw rows are still arriving ({detail})",
                           skipped=True)
    return CheckResult(name, silver == clean, f"{clean} clean rows", f"{silver} in {SILVER}", detail)


# ------------------------------------------------------------------ freshness

def _not_today(name: str, d: _Day) -> CheckResult:
    return CheckResult(name, True, None, None, f"skipped: {d.day} is not today (UTC); a past day is not expected "
                       "to be fresh", skipped=True)


def check_freshness_lake(d: _Day) -> CheckResult:
    if not d.today:
        return _not_today("freshness.lake", d)
    newest = d.con.execute(f"SELECT max(time_position) FROM {DAY_POSITIONS}").fetchone()[0]
    return age_result("freshness.lake", newest, d.now, d.settings.freshness_s, f"the lake's {d.settings.lake.table}")


def check_freshness_postgresql(d: _Day) -> CheckResult:
    if not d.today:
        return _not_today("freshness.postgresql", d)
    with d.pg() as conn:
        newest = conn.execute("SELECT max(time_position) FROM positions WHERE time_position >= %s "
                              "AND time_position < %s", (d.start, d.end)).fetchone()[0]
    return age_result("freshness.postgresql", newest, d.now, d.settings.freshness_s, "PostgreSQL's positions")


CHECK_FUNCTIONS: dict[str, Callable[[_Day], CheckResult]] = {
    "rows.lake_vs_postgresql": check_rows_postgresql, "rows.lake_vs_kafka": check_rows_kafka,
    "duplicates.lake": check_duplicates_lake, "duplicates.postgresql": check_duplicates_postgresql,
    "values.silver": check_values_silver, "values.cleaning": check_values_cleaning,
    "freshness.lake": check_freshness_lake, "freshness.postgresql": check_freshness_postgresql,
}
assert tuple(CHECK_FUNCTIONS) == NAMES


# ------------------------------------------------------------------ running them

def run_checks(day: date, settings: QualitySettings | None = None, checks: Iterable[str] | str | None = None, *,
               raise_on_failure: bool = False, now: datetime | None = None) -> list[CheckResult]:
    """The checks of one UTC day (all, or those ``checks`` names: groups like "rows" or full names like
    "values.silver"), one CheckResult each, in NAMES order. A check whose source cannot be read fails with the
    error as what was found; the others still run. ``raise_on_failure``: QualityCheckFailed when any failed.
    ``now`` (tests): the clock that decides "today", "settled" and freshness."""
    names = select(checks)
    settings = settings or QualitySettings.from_env()
    now = now or datetime.now(timezone.utc)
    d = _Day(day, settings, now)
    results = []
    try:
        for name in names:
            started = time.monotonic()
            try:
                result = CHECK_FUNCTIONS[name](d)
            except Exception as exc:  # a source that is down fails its checks and says which, the rest still run
                logger.exception("quality check %s could not run", name)
                result = CheckResult(name, False, "the check to run", f"{type(exc).__name__}: {exc}"[:500])
            logger.info("quality check %s: %s", name, "skipped" if result.skipped else "ok" if result.ok else "FAILED",
                        extra={"day": day.isoformat(), "check": name, "ok": result.ok, "expected": str(result.expected),
                               "found": str(result.found), "seconds": round(time.monotonic() - started, 2)})
            results.append(result)
    finally:
        d.close()
    if raise_on_failure:
        require_ok(results, day)
    return results


# ------------------------------------------------------------------ command line

def day_argument(text: str, today: date | None = None) -> date:
    """'YYYY-MM-DD', 'today' or 'yesterday' (UTC) -> date."""
    today = today or datetime.now(timezone.utc).date()
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        return today - timedelta(days=word == "yesterday")
    try:
        return parse_day(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or today / yesterday, UTC)") from None


def checks_argument(text: str) -> tuple[str, ...]:
    try:
        return select(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Prints one line per check; exit 0 when every check passed or was skipped, 1 when one failed, 2 on a bad
    argument or setting."""
    from pipeline_common.logs import configure_logging
    from pipeline_common.settings import ConfigError

    parser = argparse.ArgumentParser(prog="python -m lakehouse.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", required=True, type=day_argument, metavar="YYYY-MM-DD",
                        help="the UTC day to check (or today / yesterday)")
    parser.add_argument("--checks", type=checks_argument, default=NAMES, metavar="CHECK[,CHECK]",
                        help=f"groups ({','.join(GROUPS)}) or full names (default: all)")
    QualitySettings.add_flags(parser.add_argument_group("settings"))
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = QualitySettings.from_args(args)
    except ConfigError as exc:
        print(f"lake-quality: configuration error: {exc}", file=sys.stderr)
        return 2
    results = run_checks(args.day, settings, args.checks)
    for result in results:
        print(f"lake-quality: {args.day} {result.line()}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"lake-quality: {failure_message(results, args.day)}", file=sys.stderr)
        return 1
    print(f"lake-quality: {args.day}: {len(results)} checks ok "
          f"({sum(r.skipped for r in results)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
