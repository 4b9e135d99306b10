"""Which offset may be committed for each partition: never past a record that is not fully handled.

A batch is "handled" when every record in it succeeded or was dead-lettered. The committed offset
of a partition is then the last handled offset + 1 (Kafka's "next record to read"). While a batch
is in flight nothing beyond the previous batch is committable, and an aborted batch commits
nothing, so a crash at any moment re-delivers from the first unhandled record: at least once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _PartitionState:
    committed: int | None = None     # what Kafka has for the group
    handled_upto: int | None = None  # next offset after the last handled batch
    in_flight: tuple[int, int] | None = None  # (first, last) offset of the batch being handled


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict = {}

    def assign(self, tp, committed: int | None = None) -> None:
        self._parts[tp] = _PartitionState(committed=committed)

    def revoke(self, tp) -> None:
        self._parts.pop(tp, None)

    def assigned(self) -> list:
        return list(self._parts)

    def in_flight(self, tp) -> bool:
        state = self._parts.get(tp)
        return state is not None and state.in_flight is not None

    def dispatched(self, tp, first: int, last: int) -> None:
        state = self._parts[tp]
        if state.in_flight is not None:
            raise RuntimeError(f"{tp} already has a batch in flight {state.in_flight}")
        if last < first:
            raise ValueError("a batch's last offset precedes its first")
        state.in_flight = (first, last)

    def completed(self, tp, last: int) -> None:
        """The batch ending at `last` is handled; only now may its offsets be committed."""
        state = self._parts.get(tp)
        if state is None:  # revoked meanwhile: the new owner re-reads, nothing to commit here
            return
        if state.in_flight is None or state.in_flight[1] != last:
            raise RuntimeError(f"{tp}: completion of offset {last} does not match the batch in flight {state.in_flight}")
        state.in_flight = None
        state.handled_upto = last + 1

    def skipped(self, tp, next_offset: int) -> None:
        """Records up to `next_offset` matched no filter and nothing before them is pending: handled."""
        state = self._parts.get(tp)
        if state is None or state.in_flight is not None:
            return
        done = state.handled_upto if state.handled_upto is not None else state.committed
        if done is None or next_offset > done:
            state.handled_upto = next_offset

    def aborted(self, tp) -> None:
        """The batch did not finish: forget it, commit nothing for it."""
        state = self._parts.get(tp)
        if state is not None:
            state.in_flight = None

    def to_commit(self) -> dict:
        """{tp: offset} for every partition whose handled position is ahead of its committed one."""
        return {tp: s.handled_upto for tp, s in self._parts.items()
                if s.handled_upto is not None and (s.committed is None or s.handled_upto > s.committed)}

    def mark_committed(self, offsets: dict) -> None:
        for tp, offset in offsets.items():
            state = self._parts.get(tp)
            if state is not None:
                state.committed = offset

    def committed(self, tp) -> int | None:
        state = self._parts.get(tp)
        return None if state is None else state.committed
