"""The live picture: the latest position of every aircraft heard recently, and a bounded change feed.

The consumer thread writes, the API (event loop thread) reads; one lock guards both. Memory is
bounded twice: at most `max_aircraft` aircraft (the least recently heard goes first) and a change
feed of at most twice as many changes as there are aircraft (10,000 at least); a reader that fell
behind the feed is told to start again from a snapshot, which is then no larger than the changes
it missed would be.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timezone

from .records import Position

logger = logging.getLogger(__name__)


MIN_FEED_LENGTH = 10_000


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
        # (seq, icao24) of every change; a reader further behind than the feed reaches needs a snapshot.
        # Its length follows the picture's (a fixed 4 x max_aircraft grew ~2 MB/min for half an hour at
        # 400 positions/s before it was full, for a picture of 2,000 aircraft).
        self._feed_length = feed_length
        self._feed: deque[tuple[int, str]] = deque(maxlen=feed_length)
        # Called (with no argument, on the writer's thread, outside the lock) after every change: the
        # WebSocket pushes the first change after a quiet interval at once instead of at its next tick.
        self._listeners: list = []

    def subscribe(self, listener) -> None:
        self._listeners = [*self._listeners, listener]  # copy on write: the notifying thread never sees it change

    def unsubscribe(self, listener) -> None:
        self._listeners = [fn for fn in self._listeners if fn is not listener]

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # noqa: BLE001 - a closing reader must not stop the consumer
                logger.debug("live picture listener failed", exc_info=True)

    def __len__(self) -> int:
        return len(self._aircraft)

    @property
    def seq(self) -> int:
        return self._seq

    def update(self, positions: list[Position]) -> int:
        """Apply a batch of positions; an older position than the one held (a redelivery) changes nothing."""
        now = self._clock()
        with self._lock:
            aircraft, seq = self._aircraft, self._seq
            held_by, to_end, note = aircraft.get, aircraft.move_to_end, self._feed.append
            for p in positions:
                icao24 = p.icao24
                held = held_by(icao24)
                if held is not None and held[0].time_position > p.time_position:
                    continue
                aircraft[icao24] = (p, now)
                to_end(icao24)
                seq += 1
                note((seq, icao24))
            changed, self._seq = seq - self._seq, seq
            while len(self._aircraft) > self.max_aircraft:
                self._drop_oldest()
            self._trim_feed()
        if changed:
            self._notify()
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
            self._trim_feed()
        if dropped:
            self._notify()
        return dropped

    def _trim_feed(self) -> None:
        if self._feed_length is not None:
            return  # a fixed length: the deque's own maxlen
        keep = max(2 * len(self._aircraft), MIN_FEED_LENGTH)
        while len(self._feed) > keep:
            self._feed.popleft()

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
