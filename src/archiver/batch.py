"""The archiver's pure parts: one commit's worth of records (positions, rejects, next offsets), its Arrow
tables (sorted, de-duplicated on the table's key), and where to resume after a start or a refused commit."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import POSITIONS_ARROW, REJECTS_ARROW, SORT_KEYS, merge_offsets
from tracker.records import COLUMNS, Position

# Decoded positions are turned into Arrow every this many rows, so a commit's 30,000 rows wait as a few
# Arrow tables, not as 30,000 Python tuples of datetimes, strings and floats. As tuples, freed all at once
# after each commit, the archiver's memory crept up ~1 MB/min for its first 20 minutes at 1,000/s (the
# heap's fragmentation, most likely); as chunks it sat ~30 MB lower and level (10-minute soaks, 2026-12-07).
CHUNK_ROWS = 2_000


class Reject(NamedTuple):
    """A malformed record, kept with its reason (the rejects table's row, rejected_at added at commit)."""
    topic: str
    partition: int
    offset: int
    reason: str
    value: bytes | None


@dataclass
class Pending:
    """What the next commit writes: everything consumed since the last one."""
    rows: list[Position] = field(default_factory=list)      # the newest decoded positions, < CHUNK_ROWS
    chunks: list[pa.Table] = field(default_factory=list)    # the others, as Arrow (arrow_rows)
    rejects: list[Reject] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset, of what was consumed
    consumed: int = 0
    started: float = 0.0  # monotonic time of the first record, 0 while empty

    def take(self, partition: int, offset: int, now: float | None = None) -> None:
        """A record at (partition, offset) was consumed (whatever became of it)."""
        if not self.started:
            self.started = time.monotonic() if now is None else now
        self.consumed += 1
        if offset + 1 > self.offsets.get(partition, -1):
            self.offsets[partition] = offset + 1

    def add(self, position: Position) -> None:
        """A decoded position for the next commit."""
        self.rows.append(position)
        if len(self.rows) >= CHUNK_ROWS:
            self.chunks.append(arrow_rows(self.rows))
            self.rows = []

    def positions(self) -> pa.Table:
        """Every position added, in the order added, as Arrow (no ingested_at yet)."""
        return pa.concat_tables([*self.chunks, arrow_rows(self.rows)])

    def due(self, commit_rows: int, interval_s: float, now: float) -> bool:
        """Time to commit: enough records, or the oldest has waited the interval."""
        return self.consumed > 0 and (self.consumed >= commit_rows or now - self.started >= interval_s)

    def __len__(self) -> int:
        return self.consumed


def commit_offsets(table_offsets: Mapping[int, int], consumed: Mapping[int, int]) -> dict[int, int]:
    """The full {partition: next offset} map a commit records: the table's, moved on by what was consumed
    (every partition is in it, including those that had nothing new)."""
    return merge_offsets(table_offsets, consumed)


def seek_targets(partitions: Iterable[int], table_offsets: Mapping[int, int]) -> dict[int, int | None]:
    """Where each assigned partition resumes: the table's next offset, None (the beginning) for a partition
    the table has never seen."""
    return {p: table_offsets.get(p) for p in sorted(partitions)}


def already_stored(partition: int, offset: int, stored: Mapping[int, int]) -> bool:
    """A record below a table's next offset for its partition is in that table already (or was decided)."""
    return offset < stored.get(partition, 0)


KEY_COLUMNS = ["icao24", "time_position"]


_ROWS_ARROW = pa.schema([POSITIONS_ARROW.field(name) for name in COLUMNS])  # without ingested_at


def arrow_rows(positions: list[Position]) -> pa.Table:
    """Positions as Arrow columns of the positions table, ingested_at aside (it is the commit's time)."""
    if not positions:
        return _ROWS_ARROW.empty_table()
    columns = list(zip(*positions))
    return pa.Table.from_arrays([pa.array(values, type=_ROWS_ARROW.field(name).type)
                                 for name, values in zip(COLUMNS, columns)], schema=_ROWS_ARROW)


def positions_table(positions: pa.Table | list[Position], ingested_at: datetime,
                    skip: pa.Table | None = None) -> tuple[pa.Table, int]:
    """The rows of one commit (Pending.positions(), or a list of positions) as Arrow, in the table's sort
    order (PyIceberg writes rows as given), each (icao24, time_position) once: the first of the records that
    carry it by (partition, offset), and none whose key is in ``skip`` (the previous commit's keys, keys_of).
    Returns (table, duplicates dropped)."""
    rows = positions if isinstance(positions, pa.Table) else arrow_rows(positions)
    if not rows.num_rows:
        return POSITIONS_ARROW.empty_table(), 0
    stamp = pa.repeat(pa.scalar(ingested_at, type=POSITIONS_ARROW.field("ingested_at").type), rows.num_rows)
    table = pa.Table.from_arrays([*rows.combine_chunks().columns, stamp], schema=POSITIONS_ARROW)
    if skip is not None and skip.num_rows:
        # A hash anti-join in Arrow: no Python object per key (comparing datetimes row by row cost more
        # than building the batch). The join drops the fields' NOT NULL, which the cast puts back.
        table = table.join(skip, keys=KEY_COLUMNS, join_type="left anti").cast(POSITIONS_ARROW)
    dropped = rows.num_rows - table.num_rows
    table = table.sort_by([*SORT_KEYS, ("kafka_partition", "ascending"), ("kafka_offset", "ascending")])
    icao, when = table.column("icao24"), table.column("time_position")
    n = table.num_rows
    if n > 1:
        # Sorted, so a repeated key sits right after its first row: keep a row unless it equals the one before.
        same = pc.and_(pc.equal(icao.slice(1), icao.slice(0, n - 1)), pc.equal(when.slice(1), when.slice(0, n - 1)))
        keep = pa.concat_arrays([pa.array([True]), pc.invert(same.combine_chunks())])
        if not pc.all(keep).as_py():
            before = table.num_rows
            table = table.filter(keep)
            dropped += before - table.num_rows
    return table, dropped


def keys_of(table: pa.Table) -> pa.Table:
    """The (icao24, time_position) columns of a commit's rows, as positions_table's ``skip`` wants them."""
    return table.select(KEY_COLUMNS).combine_chunks()


def rejects_table(rejects: list[Reject], rejected_at: datetime) -> pa.Table:
    cols = list(zip(*rejects)) if rejects else [[] for _ in Reject._fields]
    arrays = [pa.array(values, type=REJECTS_ARROW.field(name).type) for name, values in zip(Reject._fields, cols)]
    arrays.append(pa.array([rejected_at] * len(rejects), type=REJECTS_ARROW.field("rejected_at").type))
    return pa.Table.from_arrays(arrays, schema=REJECTS_ARROW)
