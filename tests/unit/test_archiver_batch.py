"""The archiver's pure parts: what a commit holds, when it is due, its rows (sorted, each key once), the
offsets map it records, and where a start resumes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from archiver.batch import (Pending, Reject, already_stored, commit_offsets, keys_of, positions_table, rejects_table,
                            seek_targets)
from lakehouse.catalog import POSITIONS_ARROW, REJECTS_ARROW
from tracker.records import Position

T0 = datetime(2026, 12, 6, 23, 59, 58, tzinfo=timezone.utc)
NOW = datetime(2026, 12, 7, 0, 1, tzinfo=timezone.utc)


def pos(icao24: str, seconds: int, partition: int = 0, offset: int = 0, callsign: str | None = None) -> Position:
    t = T0 + timedelta(seconds=seconds)
    return Position(icao24, t, t, callsign, "Spain", 1.5, 40.25, 1000.0, None, False, 230.5, 90.0, 0.0, None, 3, 0,
                    "synthetic", partition, offset)


def test_a_commit_is_due_at_the_row_count_or_when_its_oldest_record_has_waited_the_interval():
    pending = Pending()
    assert not pending.due(3, 60, now=1000.0)  # nothing consumed: nothing to commit, however long
    pending.take(0, 7, now=100.0)
    pending.take(1, 3, now=101.0)
    assert not pending.due(3, 60, now=159.9)
    assert pending.due(3, 60, now=160.0)  # the first record's wait, not the last one's
    pending.take(0, 8, now=102.0)
    assert pending.due(3, 60, now=102.0)
    assert pending.offsets == {0: 9, 1: 4} and len(pending) == 3


def test_rows_come_sorted_by_aircraft_and_time_each_position_once_the_first_offset_kept():
    rows = [pos("bbbbbb", 5, 0, 10, "LATE"), pos("aaaaaa", 9, 1, 3), pos("bbbbbb", 5, 2, 1, "FIRST"),
            pos("aaaaaa", 2, 1, 4), pos("bbbbbb", 5, 0, 11)]
    table, dropped = positions_table(rows, NOW)
    assert dropped == 2 and table.schema == POSITIONS_ARROW
    assert list(zip(table.column("icao24").to_pylist(), [t.second for t in table.column("time_position").to_pylist()])) \
        == [("aaaaaa", 0), ("aaaaaa", 7), ("bbbbbb", 3)]  # 23:59:58 + 2, + 9 (over midnight), + 5
    assert table.column("callsign").to_pylist()[2] == "LATE"  # partition 0 offset 10 sorts before partition 2
    assert set(table.column("ingested_at").to_pylist()) == {NOW}


def test_positions_of_the_previous_commit_are_not_stored_again():
    first, _ = positions_table([pos("aaaaaa", 1), pos("aaaaaa", 2)], NOW)
    table, dropped = positions_table([pos("aaaaaa", 2, 0, 9), pos("aaaaaa", 3, 0, 10)], NOW, keys_of(first))
    assert dropped == 1 and table.num_rows == 1 and table.column("kafka_offset").to_pylist() == [10]
    assert table.schema == POSITIONS_ARROW  # NOT NULL kept through the anti-join


def test_an_empty_commit_has_no_rows_and_the_right_schema():
    table, dropped = positions_table([], NOW)
    assert table.num_rows == 0 and dropped == 0 and table.schema == POSITIONS_ARROW
    assert rejects_table([], NOW).schema == REJECTS_ARROW


def test_rejects_keep_the_record_and_its_reason():
    table = rejects_table([Reject("aviation-data", 2, 41, "icao24 is not 6 hex digits: 'zz'", b'{"icao24":"zz"}')], NOW)
    assert table.to_pylist() == [{"topic": "aviation-data", "partition": 2, "offset": 41,
                                  "reason": "icao24 is not 6 hex digits: 'zz'", "value": b'{"icao24":"zz"}',
                                  "rejected_at": NOW}]


def test_a_commit_records_every_partition_moved_on_by_what_was_consumed():
    assert commit_offsets({0: 10, 1: 5, 2: 7}, {1: 9}) == {0: 10, 1: 9, 2: 7}
    assert commit_offsets({}, {0: 1}) == {0: 1}
    # a redelivered record below the table's offset never moves it back
    assert commit_offsets({0: 10}, {0: 4}) == {0: 10}


def test_a_start_resumes_each_partition_at_the_tables_offset_or_the_beginning():
    assert seek_targets([2, 0, 1], {0: 10, 2: 0}) == {0: 10, 1: None, 2: 0}
    assert already_stored(0, 9, {0: 10}) and not already_stored(0, 10, {0: 10})
    assert not already_stored(1, 0, {0: 10})


def test_pending_positions_wait_as_arrow_chunks_and_come_back_whole_in_order(monkeypatch):
    monkeypatch.setattr("archiver.batch.CHUNK_ROWS", 3)
    pending = Pending()
    added = [pos(f"{n:06x}", n, n % 2, n) for n in range(8)]
    for position in added:
        pending.add(position)
    assert len(pending.chunks) == 2 and len(pending.rows) == 2  # 3 + 3 as Arrow, the newest 2 not yet
    table = pending.positions()
    assert table.num_rows == 8 and table.column("kafka_offset").to_pylist() == list(range(8))
    assert [Position(*row.values()) for row in table.to_pylist()] == added  # every field as decoded
    from_chunks, _ = positions_table(table, NOW)
    from_list, _ = positions_table(added, NOW)
    assert from_chunks.equals(from_list)


def test_an_empty_pending_commit_gives_an_empty_table():
    table, dropped = positions_table(Pending().positions(), NOW)
    assert table.num_rows == 0 and dropped == 0 and table.schema == POSITIONS_ARROW
