"""Per-partition record buffers and the rule that cuts a batch from them, as AWS's ESM does.

A batch is ready when it reaches BatchSize records, when the next record would take the event
past the 6 MB payload limit, or when MaximumBatchingWindowInSeconds has passed since the first
record of the buffer arrived ("a batching window begins as soon as the first record arrives"),
whichever comes first. Each batch holds records of a single partition: that keeps one batch in
flight per partition (order) and is a valid ESM event; AWS's own poller may mix partitions in
one event, which functions must handle anyway.

With FilterCriteria, records that match no filter never enter the buffer ("Lambda applies your
filter criteria to each new event to determine whether to add it to the current batch"), but their
offsets are still accounted for: a batch is handled up to the next buffered record (or, when it
empties the buffer, up to the last record fetched), so dropped records are committed with it, and
`filtered_upto` lets the run loop commit a partition whose newest records were all dropped.
"""
from __future__ import annotations

import time
from array import array


class PartitionBuffer:
    """Records fetched for one partition and not yet handed to a batch."""

    def __init__(self, topic: str, partition: int, builder) -> None:
        self.topic = topic
        self.partition = partition
        self._builder = builder
        self._records: list = []
        self._sizes = array("q")  # each record's bytes in the event, without per-record int objects
        self.bytes = 0
        self.first_arrival: float | None = None
        # The offset the next fetched record must have: anything below it is already buffered, in
        # flight or handled (a fetch from before a seek or a rebalance) and is dropped, not re-sent.
        self.next_offset: int | None = None
        self._fixed = builder.envelope_size() + builder.group_size(topic, partition)
        # Next offset after records dropped by the filter behind the last buffered record (None: none).
        self.filtered_upto: int | None = None
        # After take(): the last offset the batch accounts for (its last record, or the dropped ones after it).
        self.taken_through: int | None = None

    def __len__(self) -> int:
        return len(self._records)

    def add(self, records: list, now: float | None = None) -> int:
        """Append fetched records (in offset order); returns how many were new."""
        if self.next_offset is not None and records and records[0].offset < self.next_offset:
            records = [r for r in records if r.offset >= self.next_offset]
        if not records:
            return 0
        if not self._records:
            self.first_arrival = time.monotonic() if now is None else now
        sizes = self._builder.record_sizes(self.topic, self.partition, records)
        self._records.extend(records)
        self._sizes.extend(sizes)
        self.bytes += sum(sizes) + len(sizes)  # + one comma each
        self.next_offset = records[-1].offset + 1
        return len(records)

    def add_matching(self, records: list, matches, now: float | None = None) -> tuple[int, int]:
        """Like add(), keeping only records whose value `matches`; returns (kept, dropped)."""
        if self.next_offset is not None and records and records[0].offset < self.next_offset:
            records = [r for r in records if r.offset >= self.next_offset]
        if not records:
            return 0, 0
        kept = [r for r in records if matches(r.value)]
        if kept:
            self.add(kept, now)
        last = records[-1].offset
        if not kept or kept[-1].offset != last:
            self.filtered_upto = last + 1
        self.next_offset = last + 1
        return len(kept), len(records) - len(kept)

    def ready(self, batch_size: int, window_s: float, max_payload: int, now: float | None = None) -> bool:
        if not self._records:
            return False
        if len(self._records) >= batch_size or self._fixed + self.bytes >= max_payload:
            return True
        return (time.monotonic() if now is None else now) - self.first_arrival >= window_s

    def window_deadline(self, window_s: float) -> float | None:
        return None if self.first_arrival is None else self.first_arrival + window_s

    def take(self, batch_size: int, max_payload: int) -> list:
        """Cut the next batch: at most batch_size records and max_payload bytes (at least one record;
        a record too large on its own goes alone and is dead-lettered by the processor)."""
        total = self._fixed - 1  # the first record has no comma before it
        count = 0
        limit = min(batch_size, len(self._records))
        sizes = self._sizes
        while count < limit:
            nxt = total + sizes[count] + 1
            if nxt > max_payload and count:
                break
            total = nxt
            count += 1
        batch = self._records[:count]
        taken = sum(sizes[:count]) + count
        del self._records[:count]
        del self._sizes[:count]
        self.bytes -= taken
        if self._records:
            self.taken_through = self._records[0].offset - 1  # dropped records before the next one go too
        else:
            self.first_arrival = None
            self.taken_through = batch[-1].offset
            if self.filtered_upto is not None:
                self.taken_through = max(self.taken_through, self.filtered_upto - 1)
                self.filtered_upto = None
        return batch

    def clear(self, next_offset: int | None = None) -> None:
        """Empty the buffer; the next record expected is `next_offset` (after a seek)."""
        self.next_offset = next_offset
        self.filtered_upto = None
        self._records.clear()
        del self._sizes[:]
        self.bytes = 0
        self.first_arrival = None
