"""The lake's maintenance with PyIceberg alone (`python -m infra.lake.maintain`): compaction of small files
per day, snapshot expiry, and the sweep of orphan files, in that order.

Exactly once depends on this module. The archiver resumes from OFFSETS_PROPERTY in the table's current
snapshot (lakehouse.catalog.committed_offsets), so:
- every snapshot a step creates carries the archiver's latest offsets forward (compaction is the only step
  that creates one; expiry and the sweep create none);
- a step never rebases onto a commit it did not see: the tables have commit.retry.num-retries=0, so when the
  archiver commits while a day is being compacted, one of the two commits is refused. If it is the
  compaction's, its new files are removed and the day is planned again from the new table; if it is the
  archiver's, the archiver reloads the table, whose offsets are the ones it last committed (carried by the
  compaction), and reads those records again;
- expiry keeps the current snapshot, the newest snapshot that carries the offsets, and the newest N.

PyIceberg 0.12 has no rewrite_data_files and no remove_orphan_files, and its expire_snapshots removes
snapshots from the metadata but deletes no file: the files they alone referenced are left to the sweep,
which deletes what no live snapshot or metadata file references and is older than a safety window
(writers upload their files before they commit).
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, ClassVar, Iterable, Sequence

from pipeline_common.settings import Settings, setting

logger = logging.getLogger(__name__)

MAINTENANCE_PROPERTY = "flightpipe.maintenance"
_MB = 1024 * 1024


def size_text(n: int) -> str:
    """Bytes as a person reads them: 512 B, 40.2 kB, 12.3 MB."""
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} kB" if n < _MB else f"{n / _MB:.1f} MB"


@dataclass(frozen=True)
class MaintenanceSettings(Settings):
    ENV_PREFIX: ClassVar[str] = "LAKE_"
    USED_BY: ClassVar[str] = "lake-maintain"

    small_file_mb: float = setting("LAKE_SMALL_FILE_MB", 32.0, greater_than=0, unit="MB",
                                   help="compaction rewrites a day's data files smaller than this")
    compact_target_mb: float = setting("LAKE_COMPACT_TARGET_MB", 128.0, greater_than=0, unit="MB",
                                       help="compaction packs small files into new files of about this many MB of "
                                            "Parquet (held in memory as Arrow while rewritten: about 4x that)")
    keep_snapshots: int = setting("LAKE_KEEP_SNAPSHOTS", 10, minimum=1,
                                  help="snapshot expiry always keeps this many of the newest snapshots")
    snapshot_max_age_s: float = setting("LAKE_SNAPSHOT_MAX_AGE_S", 6 * 3600.0, minimum=0, unit="s",
                                        help="snapshot expiry removes snapshots older than this (beyond the newest "
                                             "LAKE_KEEP_SNAPSHOTS); time travel reaches back this far")
    orphan_min_age_s: float = setting("LAKE_ORPHAN_MIN_AGE_S", 3600.0, minimum=600, unit="s",
                                      help="the orphan sweep deletes an unreferenced file only when it is older than "
                                           "this: a writer uploads its files before it commits them")


# ------------------------------------------------------------------ compaction

@dataclass(frozen=True)
class FileRef:
    """What compaction plans with: one live data file."""
    partition: str       # e.g. time_position_day=2026-12-06
    path: str
    size: int            # bytes
    rows: int
    has_deletes: bool = False


def plan_compaction(files: Iterable[FileRef], small_bytes: int, target_bytes: int) -> dict[str, list[list[FileRef]]]:
    """{partition: bins}: per partition, the files smaller than ``small_bytes`` (and without delete files,
    which compaction does not apply) packed first-fit, largest first, into bins of at most ``target_bytes``;
    a bin of one file is left out (rewriting it alone gains nothing). Deterministic for the same files."""
    by_partition: dict[str, list[FileRef]] = {}
    for f in files:
        if f.size < small_bytes and not f.has_deletes:
            by_partition.setdefault(f.partition, []).append(f)
    plan: dict[str, list[list[FileRef]]] = {}
    for partition, small in sorted(by_partition.items()):
        bins: list[list[FileRef]] = []
        room: list[int] = []
        for f in sorted(small, key=lambda f: (-f.size, f.path)):
            for i, free in enumerate(room):
                if f.size <= free:
                    bins[i].append(f)
                    room[i] -= f.size
                    break
            else:
                bins.append([f])
                room.append(target_bytes - f.size)
        bins = [b for b in bins if len(b) > 1]
        if bins:
            plan[partition] = bins
    return plan


@dataclass
class CompactionReport:
    partition: str
    files_before: int = 0      # the files rewritten
    files_after: int = 0       # the files that replaced them
    bytes_before: int = 0
    bytes_after: int = 0
    rows: int = 0
    attempts: int = 0
    snapshot_id: int | None = None
    error: str | None = None   # set when the day was left as it was
    note: str | None = None    # nothing to do after all (another run compacted it meanwhile)

    def line(self) -> str:
        if self.note:
            return f"compaction {self.partition}: {self.note}"
        if self.error:
            return f"compaction {self.partition}: not done ({self.error})"
        return (f"compaction {self.partition}: {self.files_before} files ({size_text(self.bytes_before)}) -> "
                f"{self.files_after} ({size_text(self.bytes_after)}), {self.rows} rows, snapshot {self.snapshot_id}")


def _partition_label(table, data_file) -> str:
    return table.specs()[data_file.spec_id].partition_to_path(data_file.partition, table.schema())


def _day_filter(table, day: date):
    """The rows of ``day`` by the column the table is partitioned by day on (positions: time_position)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
    from pyiceberg.transforms import DayTransform

    from .gold import day_bounds

    for part in table.spec().fields:
        if isinstance(part.transform, DayTransform):
            column = table.schema().find_column_name(part.source_id)
            start, end = day_bounds(day)
            return And(GreaterThanOrEqual(column, start.isoformat()), LessThan(column, end.isoformat()))
    raise ValueError(f"table {'.'.join(table.name())} is not partitioned by day: compact it without a day")


def live_files(table, day: date | None = None) -> list[tuple[FileRef, object]]:
    """(FileRef, scan task) of every live data file (of ``day`` when given)."""
    from pyiceberg.expressions import AlwaysTrue

    row_filter = _day_filter(table, day) if day is not None else AlwaysTrue()
    out = []
    for task in table.scan(row_filter=row_filter).plan_files():
        f = task.file
        out.append((FileRef(_partition_label(table, f), f.file_path, f.file_size_in_bytes, f.record_count,
                            bool(task.delete_files)), task))
    return out


def carried_properties(table, step: str) -> dict[str, str]:
    """The snapshot properties of a maintenance commit: the archiver's offsets, as its last commit left them."""
    from .catalog import offsets_snapshot_properties

    return {**offsets_snapshot_properties(table), MAINTENANCE_PROPERTY: step}


def _rewrite_partition(table, partition: str, bins: list[list[FileRef]], tasks: dict[str, object],
                       report: CompactionReport) -> None:
    """One commit: the bins' files out, each bin's rows (sorted by the table's sort order) in as new files."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

    sort_keys = [(table.schema().find_column_name(f.source_id), "ascending" if f.direction.name == "ASC" else
                  "descending") for f in table.sort_order().fields]
    written = []
    try:
        with table.transaction() as tx:
            props = carried_properties(table, f"compaction {partition}")
            with tx.update_snapshot(snapshot_properties=props).overwrite() as rewrite:
                counter = itertools.count()
                for files in bins:
                    rows = ArrowScan(tx.table_metadata, table.io, table.schema(), AlwaysTrue()).to_table(
                        [tasks[f.path] for f in files])
                    expected = sum(f.rows for f in files)
                    if rows.num_rows != expected:
                        raise RuntimeError(f"{partition}: read {rows.num_rows} rows from files that hold {expected}")
                    if sort_keys:
                        rows = rows.sort_by(sort_keys)
                    new = list(_dataframe_to_data_files(table_metadata=tx.table_metadata, df=rows, io=table.io,
                                                        write_uuid=rewrite.commit_uuid, counter=counter))
                    written += new
                    if sum(d.record_count for d in new) != expected:
                        raise RuntimeError(f"{partition}: wrote {sum(d.record_count for d in new)} rows of {expected}")
                    for f in files:
                        rewrite.delete_data_file(tasks[f.path].file)
                    for d in new:
                        rewrite.append_data_file(d)
                    report.files_before += len(files)
                    report.bytes_before += sum(f.size for f in files)
                    report.rows += expected
    except Exception:
        for d in written:  # never committed: nothing references them
            try:
                table.io.delete(d.file_path)
            except OSError:
                logger.warning("could not remove %s after a refused compaction; the orphan sweep will", d.file_path)
        raise
    report.files_after = len(written)
    report.bytes_after = sum(d.file_size_in_bytes for d in written)
    report.snapshot_id = table.current_snapshot().snapshot_id


def compact(table, settings: MaintenanceSettings, day: date | None = None, attempts: int = 3) -> list[CompactionReport]:
    """Rewrite each day's small files into fewer, larger, sorted ones; one commit per day, carrying the offsets.
    A commit refused because the table moved on (the archiver committed) is planned again from the new table,
    up to ``attempts`` times; every attempt reads the files afresh, so nothing is rebased blindly."""
    from pyiceberg.exceptions import CommitFailedException

    small, target = int(settings.small_file_mb * _MB), int(settings.compact_target_mb * _MB)
    reports = []
    planned = plan_compaction((ref for ref, _ in live_files(table, day)), small, target)
    for partition in planned:
        report = CompactionReport(partition)
        for attempt in range(1, attempts + 1):
            report = CompactionReport(partition, attempts=attempt)
            files = {ref.path: (ref, task) for ref, task in live_files(table, day) if ref.partition == partition}
            bins = plan_compaction((ref for ref, _ in files.values()), small, target).get(partition)
            if not bins:
                report.note = "nothing left to compact (compacted meanwhile)"
                break
            try:
                _rewrite_partition(table, partition, bins, {p: task for p, (_, task) in files.items()}, report)
                break
            except CommitFailedException as exc:
                report.error = f"the table changed meanwhile ({exc}); tried {attempt} times"
                logger.info("compaction of %s refused (attempt %s): %s", partition, attempt, exc)
                table.refresh()
        reports.append(report)
        logger.info(report.line(), extra={"partition": partition, "files_before": report.files_before,
                                          "files_after": report.files_after, "rows": report.rows})
    return reports


# ------------------------------------------------------------------ snapshot expiry

@dataclass(frozen=True)
class SnapshotRef:
    snapshot_id: int
    timestamp_ms: int


def plan_expiry(snapshots: Sequence[SnapshotRef], protected: set[int], keep_last: int, max_age_ms: int,
                now_ms: int) -> list[int]:
    """The snapshot ids to expire: older than ``max_age_ms``, not among the ``keep_last`` newest, not protected
    (branch and tag heads, the newest snapshot carrying the offsets)."""
    newest = sorted(snapshots, key=lambda s: (s.timestamp_ms, s.snapshot_id), reverse=True)
    keep = {s.snapshot_id for s in newest[:keep_last]} | protected
    return sorted(s.snapshot_id for s in newest if s.snapshot_id not in keep and s.timestamp_ms < now_ms - max_age_ms)


@dataclass
class ExpiryReport:
    snapshots_before: int = 0
    expired: int = 0
    snapshots_after: int = 0
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"snapshot expiry: not done ({self.error})"
        return f"snapshot expiry: {self.snapshots_before} snapshots -> {self.snapshots_after} ({self.expired} expired)"


def protected_snapshots(table) -> set[int]:
    """Branch and tag heads, and the newest snapshot of the current lineage whose summary carries the offsets."""
    from pyiceberg.table.snapshots import ancestors_of

    from .catalog import OFFSETS_PROPERTY

    ids = {ref.snapshot_id for ref in table.metadata.refs.values()}
    current = table.current_snapshot()
    if current is not None:
        for snapshot in ancestors_of(current, table.metadata):
            if snapshot.summary and snapshot.summary.additional_properties.get(OFFSETS_PROPERTY):
                ids.add(snapshot.snapshot_id)
                break
    return ids


def expire(table, settings: MaintenanceSettings, now: Callable[[], float] = time.time,
           attempts: int = 3) -> ExpiryReport:
    """Expire old snapshots (metadata only). Removing snapshots commutes with an archiver's append, so a commit
    refused because the table moved on is simply planned and tried again."""
    from pyiceberg.exceptions import CommitFailedException

    report = ExpiryReport()
    for attempt in range(1, attempts + 1):
        snapshots = [SnapshotRef(s.snapshot_id, s.timestamp_ms) for s in table.snapshots()]
        report = ExpiryReport(snapshots_before=len(snapshots))
        ids = plan_expiry(snapshots, protected_snapshots(table), settings.keep_snapshots,
                          int(settings.snapshot_max_age_s * 1000), int(now() * 1000))
        if not ids:
            report.snapshots_after = len(snapshots)
            break
        try:
            table.maintenance.expire_snapshots().by_ids(ids).commit()
        except CommitFailedException as exc:
            report.error = f"the table changed meanwhile ({exc}); tried {attempt} times"
            table.refresh()
            continue
        report.expired, report.snapshots_after, report.error = len(ids), len(table.snapshots()), None
        break
    logger.info(report.line(), extra={"expired": report.expired, "snapshots": report.snapshots_after})
    return report


# ------------------------------------------------------------------ orphan sweep

@dataclass(frozen=True)
class ListedFile:
    path: str            # as the file system lists it: bucket/key, or /dir/file
    size: int
    mtime: float | None  # seconds since the epoch; None when the store does not say (then it is never deleted)


def normalize(location: str) -> str:
    """s3://bucket/key -> bucket/key, file:///dir/f -> /dir/f: one form for listed and referenced paths."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    return PyArrowFileIO.parse_location(location)[2]


def find_orphans(listed: Iterable[ListedFile], referenced: set[str], table_root: str, min_age_s: float,
                 now_s: float) -> tuple[list[ListedFile], list[ListedFile]]:
    """(orphans old enough to delete, orphans too young to touch) among ``listed``. Only files under the table's
    own data/ and metadata/ folders are candidates: anything else under its location is not Iceberg's."""
    root = table_root.rstrip("/") + "/"
    old, young = [], []
    for f in listed:
        if not f.path.startswith((root + "data/", root + "metadata/")) or f.path in referenced:
            continue
        if f.path.endswith("/version-hint.text"):  # a Hadoop catalog's pointer: no metadata references it
            continue
        if f.mtime is None or f.mtime > now_s - min_age_s:
            young.append(f)
        else:
            old.append(f)
    return old, young


def referenced_files(table) -> set[str]:
    """Every file the table's current metadata reaches (normalized): the metadata file and its log, statistics,
    every live snapshot's manifest list, their manifests and every data and delete file in those (deleted
    entries too: conservative). Each manifest is read once, however many snapshots share it."""
    meta = table.metadata
    out = {table.metadata_location, *(entry.metadata_file for entry in meta.metadata_log)}
    out |= {s.statistics_path for s in meta.statistics} | {s.statistics_path for s in meta.partition_statistics}
    manifests = {}
    for snapshot in meta.snapshots:
        out.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            manifests.setdefault(manifest.manifest_path, manifest)
    for path, manifest in manifests.items():
        out.add(path)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
            out.add(entry.data_file.file_path)
    return {normalize(p) for p in out}


def list_table_files(table) -> list[ListedFile]:
    """Every object under the table's location, through the table's own FileIO (S3 or a local folder)."""
    from pyarrow.fs import FileSelector, FileType
    from pyiceberg.io.pyarrow import PyArrowFileIO

    scheme, netloc, path = PyArrowFileIO.parse_location(table.location())
    fs = table.io.fs_by_scheme(scheme, netloc)
    infos = fs.get_file_info(FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True))
    return [ListedFile(i.path, i.size or 0, i.mtime.timestamp() if i.mtime is not None else None)
            for i in infos if i.type == FileType.File]


@dataclass
class SweepReport:
    listed: int = 0
    referenced: int = 0
    orphans: int = 0            # old enough, deleted (or would be, with dry_run)
    too_young: int = 0          # unreferenced but inside the safety window
    bytes_removed: int = 0
    dry_run: bool = False
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"orphan sweep: {self.listed} files under the table, {self.referenced} referenced, {verb} "
                f"{self.orphans} ({size_text(self.bytes_removed)}), {self.too_young} unreferenced but too young")


def sweep(table, settings: MaintenanceSettings | None = None, *, min_age_s: float | None = None,
          dry_run: bool = False, now: Callable[[], float] = time.time) -> SweepReport:
    """Delete the files under the table's location that nothing live references and that are older than the
    safety window. The listing comes first and the table is reloaded after it, so a file committed while
    listing is seen as referenced; a file uploaded but not yet committed is younger than the window."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    min_age = settings.orphan_min_age_s if min_age_s is None else min_age_s
    listed = list_table_files(table)
    table.refresh()
    referenced = referenced_files(table)
    root = PyArrowFileIO.parse_location(table.location())[2]
    old, young = find_orphans(listed, referenced, root, min_age, now())
    report = SweepReport(listed=len(listed), referenced=len(referenced & {f.path for f in listed}),
                         orphans=len(old), too_young=len(young), dry_run=dry_run,
                         bytes_removed=sum(f.size for f in old), examples=[f.path for f in old[:3]])
    if not dry_run and old:
        scheme, netloc, _ = PyArrowFileIO.parse_location(table.location())
        fs = table.io.fs_by_scheme(scheme, netloc)
        for f in old:
            fs.delete_file(f.path)
    logger.info(report.line(), extra={"orphans": report.orphans, "too_young": report.too_young,
                                      "dry_run": dry_run})
    return report


# ------------------------------------------------------------------ all three

@dataclass
class MaintenanceReport:
    table: str
    compaction: list[CompactionReport] | None = None  # None: the step did not run
    expiry: ExpiryReport | None = None
    sweep: SweepReport | None = None

    def lines(self) -> list[str]:
        out = []
        if self.compaction is not None:
            out += [r.line() for r in self.compaction] or ["compaction: no day has small files to merge"]
        out += [r.line() for r in (self.expiry, self.sweep) if r is not None]
        return [f"{self.table}: {line}" for line in out]


def maintain(table, settings: MaintenanceSettings, *, day: date | None = None, steps: Sequence[str] = (
        "compact", "expire", "sweep"), dry_run: bool = False) -> MaintenanceReport:
    report = MaintenanceReport(".".join(table.name()))
    if "compact" in steps and not dry_run:
        report.compaction = compact(table, settings, day)
    if "expire" in steps and not dry_run:
        report.expiry = expire(table, settings)
    if "sweep" in steps:
        report.sweep = sweep(table, settings, dry_run=dry_run)
    return report

