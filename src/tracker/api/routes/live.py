"""WebSocket /ws/flights[?bbox=]: a snapshot, then the aircraft that changed and the ones that left (the
picture, or the bbox), at most once per TRACKER_WS_INTERVAL_S.

Pushes follow the changes, not a clock: the first change after a quiet interval goes out as soon as
its burst is over (producers send every aircraft of a fetch at once, and the consumer reads such a
burst in several polls over some tens of milliseconds: pushed at its first poll, the rest of the burst
would wait a whole interval), later ones when the interval since the previous push has passed. A
client that fell behind the change feed gets a fresh snapshot instead of an ever-growing backlog."""
from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...filters import BadParameter, parse_bbox
from ...flight_view import iso
from ...live import utc_now

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

# A burst is over when the picture has not changed for QUIET_S. The first push of a burst waits for that,
# at least GATHER_MIN_S and at most GATHER_MAX_S after its first change; when the interval since the
# previous push ends in the middle of a burst, the push waits for its end at most EXTEND_S longer. A
# steady stream (changes right through the previous push) is pushed when the interval has passed.
QUIET_S = 0.05
GATHER_MIN_S = 0.15
GATHER_MAX_S = 0.5
EXTEND_S = 0.2


class PushTiming:
    """When the next push may go out, given what the feed has seen: pure, so its rules are tested alone
    (tests/unit/test_tracker_ws_timing.py) with made-up times. All times are the event loop's clock."""

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.pushed_at = now     # the last push (or the snapshot)
        self.last_change = 0.0   # the last change of the live picture seen
        self.earliest = self.latest = now

    def changed(self, now: float) -> None:
        self.last_change = now

    def pushed(self, at: float) -> None:
        self.pushed_at = at

    def start_waiting(self, first: float) -> None:
        """A change was seen at `first`: the window in which its push goes out."""
        due = self.pushed_at + self.interval
        if first - self.pushed_at < QUIET_S:  # a steady stream: changes right through the previous push
            self.earliest = self.latest = due
        else:
            self.earliest = max(due, first + GATHER_MIN_S)
            self.latest = max(first + GATHER_MAX_S, due + EXTEND_S)

    def wait_s(self, now: float) -> float:
        """Seconds still to wait before pushing (<= 0: push now): not before `earliest`, then until the burst
        has been quiet for QUIET_S, but never past `latest`."""
        return max(self.earliest, min(self.last_change + QUIET_S, self.latest)) - now


class FlightsFeed:
    """One WebSocket client of /ws/flights: its bbox, what it has been shown, and the push loop."""

    def __init__(self, websocket: WebSocket, state, bbox) -> None:
        self.ws = websocket
        self.state = state
        self.bbox = bbox
        self.loop = asyncio.get_running_loop()
        self.closed = asyncio.Event()
        self.wake = asyncio.Event()  # a change in the live picture, or the client gone
        self.timing = PushTiming(state.config.ws_interval_s, self.loop.time())
        self.seq = 0
        self.known: set[str] = set()
        self.alerts = state.alerts.buffer if state.alerts is not None else None
        # Alerts from now on; the page reads GET /alerts first.
        self.alert_seq = self.alerts.seq if self.alerts is not None else 0

    # ---------------------------------------------------------------- the consumer's side
    def changed(self) -> None:
        """Called on the consumer's thread after each change of the live picture."""
        try:
            self.loop.call_soon_threadsafe(self._on_change)
        except RuntimeError:  # the loop is closing
            pass

    def _on_change(self) -> None:
        self.timing.changed(self.loop.time())
        self.wake.set()

    # ---------------------------------------------------------------- the client's side
    async def _watch_close(self) -> None:
        try:
            while True:
                await self.ws.receive_text()  # the client may send anything; we only care it is there
        except (WebSocketDisconnect, RuntimeError):
            self.closed.set()
            self.wake.set()

    async def _sleep_unless_closed(self, seconds: float) -> bool:
        """Wait `seconds`; True when the client went away meanwhile."""
        try:
            await asyncio.wait_for(self.closed.wait(), timeout=seconds)
            return True
        except asyncio.TimeoutError:
            return False

    def _inside(self, p) -> bool:
        return self.bbox is None or self.bbox.contains(p.latitude, p.longitude)

    @staticmethod
    def _message(kind: str, body: dict[str, list[bytes]]) -> str:
        parts = b",".join(b'"%s":[%s]' % (k.encode(), b",".join(v)) for k, v in body.items())
        return f'{{"type":"{kind}","time":"{iso(utc_now())}",{parts.decode()}}}'

    async def _snapshot(self) -> None:
        # GET /flights' view (at most one interval old, encoded once): its seq is where the changes go on from.
        view = self.state.flights_view.current()
        if self.bbox is None:
            shown, texts = view.positions, view.texts
        else:
            pairs = [(p, t) for p, t in zip(view.positions, view.texts) if self._inside(p)]
            shown, texts = [p for p, _ in pairs], [t for _, t in pairs]
        await self.ws.send_text(self._message("snapshot", {"flights": texts}))
        self.seq, self.known = view.seq, {p.icao24 for p in shown}

    async def _wait_for_push(self) -> None:
        """Until something changes (at least once an interval, to pass on new alerts); then, keeping to one
        push per interval, until the burst is over (bounded)."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=self.timing.interval)
        except asyncio.TimeoutError:
            pass
        if self.closed.is_set() or self.state.live.seq == self.seq:
            return
        self.timing.start_waiting(self.loop.time())
        while (wait := self.timing.wait_s(self.loop.time())) > 0:
            if await self._sleep_unless_closed(wait):
                return

    async def _push_alerts(self) -> None:
        if self.alerts is None:
            return
        self.alert_seq, fresh = self.alerts.since_seq(self.alert_seq)
        for alert in fresh:
            await self.ws.send_text(json.dumps({"type": "alert", "time": iso(utc_now()), "alert": alert}))

    async def _push_changes(self) -> None:
        taken_at = self.loop.time()
        changes = self.state.live.changes_since(self.seq)
        if changes is None:  # fell behind the change feed: a fresh snapshot instead of a backlog
            await self._snapshot()
            self.timing.pushed(taken_at)
            return
        changed_now = [p for p in changes.changed if self._inside(p)]
        left = [p.icao24 for p in changes.changed if not self._inside(p) and p.icao24 in self.known]
        removed = [i for i in changes.removed if i in self.known] + left
        self.seq = changes.seq
        if not changed_now and not removed:
            return
        self.known.difference_update(removed)
        self.known.update(p.icao24 for p in changed_now)
        self.timing.pushed(taken_at)
        cache = self.state.json_cache
        await self.ws.send_text(self._message("update", {"changed": [cache.get_bytes(p) for p in changed_now],
                                                         "removed": [json.dumps(i).encode() for i in removed]}))

    async def run(self) -> None:
        live = self.state.live
        watcher = asyncio.create_task(self._watch_close())
        live.subscribe(self.changed)
        try:
            await self._snapshot()
            self.timing.pushed(self.loop.time())
            while not self.closed.is_set():
                await self._wait_for_push()
                if self.closed.is_set():
                    break
                self.wake.clear()
                await self._push_alerts()
                await self._push_changes()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            live.unsubscribe(self.changed)
            watcher.cancel()


@router.websocket("/ws/flights")
async def flights_feed(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        bbox = parse_bbox(websocket.query_params.get("bbox"))
    except BadParameter as exc:
        await websocket.send_json({"type": "error", "detail": str(exc)})
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    await FlightsFeed(websocket, websocket.app.state.tracker, bbox).run()
