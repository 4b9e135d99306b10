"""The live picture: the latest position of every aircraft heard recently, and a bounded change feed.

The consumer thread writes, the API (event loop thread) reads; one lock guards both. Memory is
bounded twice: at most `max_aircraft` aircraft (the least recently heard goes first) and a change
feed of fixed length; a reader that fell behind the feed is told to start again from a snapshot.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timezone

from .records import Position


@dataclass(frozen=True)
class Changes:
    seq: int
    changed: list[Position]
    removed: list[str]


class LivePicture:
    def __init__(self, stale_after_s: float = 300.0, max_aircraft: int = 100_000, feed_length: int | None = None,
                 clock=time.time) -> None:
        self.stale_after_s = stale_after_s
        self.max_aircraft = max_aircraft
        self._clock = clock
        self._lock = threading.Lock()
        # icao24 -> (position, heard at): ordered by when each aircraft was last heard, oldest first.
        self._aircraft: OrderedDict[str, tuple[Position, float]] = OrderedDict()
        self._seq = 0
        # (seq, icao24) of every change; a reader more than this many changes behind needs a snapshot.
        self._feed: deque[tuple[int, str]] = deque(maxlen=feed_length or max(4 * max_aircraft, 10_000))

    def __len__(self) -> int:
        return len(self._aircraft)

    @property
    def seq(self) -> int:
        return self._seq

    def update(self, positions: list[Position]) -> int:
        """Apply a batch of positions; an older position than the one held (a redelivery) changes nothing."""
        now = self._clock()
        changed = 0
        with self._lock:
            for p in positions:
                held = self._aircraft.get(p.icao24)
                if held is not None and held[0].time_position > p.time_position:
                    continue
                self._aircraft[p.icao24] = (p, now)
                self._aircraft.move_to_end(p.icao24)
                self._seq += 1
                self._feed.append((self._seq, p.icao24))
                changed += 1
            while len(self._aircraft) > self.max_aircraft:
                self._drop_oldest()
        return changed

    def expire(self) -> int:
        """Drop aircraft not heard for stale_after_s (by when we heard them: a replay of old data stays visible)."""
        cutoff = self._clock() - self.stale_after_s
        dropped = 0
        with self._lock:
            while self._aircraft:
                _icao, (_p, heard) = next(iter(self._aircraft.items()))
                if heard >= cutoff:
                    break
                self._drop_oldest()
                dropped += 1
        return dropped

    def _drop_oldest(self) -> None:
        icao24, _ = self._aircraft.popitem(last=False)
        self._seq += 1
        self._feed.append((self._seq, icao24))

    def snapshot(self) -> tuple[int, list[Position]]:
        with self._lock:
            return self._seq, [p for p, _ in self._aircraft.values()]

    def get(self, icao24: str) -> Position | None:
        with self._lock:
            held = self._aircraft.get(icao24)
        return held[0] if held else None

    def changes_since(self, seq: int) -> Changes | None:
        """What changed after `seq` (changed aircraft, removed icao24s); None when the feed no longer
        reaches back that far (the reader must take a snapshot)."""
        with self._lock:
            if seq >= self._seq:
                return Changes(self._seq, [], [])
            if not self._feed or self._feed[0][0] > seq + 1:
                return None
            touched: set[str] = set()
            for entry_seq, icao24 in reversed(self._feed):
                if entry_seq <= seq:
                    break
                touched.add(icao24)
            changed = [self._aircraft[i][0] for i in touched if i in self._aircraft]
            removed = [i for i in touched if i not in self._aircraft]
            return Changes(self._seq, changed, removed)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
