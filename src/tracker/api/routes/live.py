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


@router.websocket("/ws/flights")
async def flights_feed(websocket: WebSocket) -> None:
    state = websocket.app.state.tracker
    await websocket.accept()
    try:
        bbox = parse_bbox(websocket.query_params.get("bbox"))
    except BadParameter as exc:
        await websocket.send_json({"type": "error", "detail": str(exc)})
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    live, cache, interval = state.live, state.json_cache, state.config.ws_interval_s
    loop = asyncio.get_running_loop()

    def inside(p) -> bool:
        return bbox is None or bbox.contains(p.latitude, p.longitude)

    def message(kind: str, body: dict[str, list[bytes]]) -> str:
        parts = b",".join(b'"%s":[%s]' % (k.encode(), b",".join(v)) for k, v in body.items())
        return f'{{"type":"{kind}","time":"{iso(utc_now())}",{parts.decode()}}}'

    async def snapshot() -> tuple[int, set[str]]:
        # GET /flights' view (at most one interval old, encoded once): its seq is where the changes go on from.
        view = state.flights_view.current()
        if bbox is None:
            shown, texts = view.positions, view.texts
        else:
            pairs = [(p, t) for p, t in zip(view.positions, view.texts) if inside(p)]
            shown, texts = [p for p, _ in pairs], [t for _, t in pairs]
        await websocket.send_text(message("snapshot", {"flights": texts}))
        return view.seq, {p.icao24 for p in shown}

    closed = asyncio.Event()
    wake = asyncio.Event()  # a change in the live picture, or the client gone
    last_change = [0.0]

    def on_change() -> None:  # the event loop, soon after a change
        last_change[0] = loop.time()
        wake.set()

    def changed() -> None:  # the consumer's thread, after each change of the live picture
        try:
            loop.call_soon_threadsafe(on_change)
        except RuntimeError:  # the loop is closing
            pass

    async def watch_close() -> None:
        try:
            while True:
                await websocket.receive_text()  # the client may send anything; we only care it is there
        except (WebSocketDisconnect, RuntimeError):
            closed.set()
            wake.set()

    async def sleep_unless_closed(seconds: float) -> bool:
        """Wait `seconds`; True when the client went away meanwhile."""
        try:
            await asyncio.wait_for(closed.wait(), timeout=seconds)
            return True
        except asyncio.TimeoutError:
            return False

    watcher = asyncio.create_task(watch_close())
    live.subscribe(changed)
    alerts = state.alerts.buffer if state.alerts is not None else None
    alert_seq = alerts.seq if alerts is not None else 0  # alerts from now on; the page reads GET /alerts first
    try:
        seq, known = await snapshot()
        pushed_at = loop.time()
        while not closed.is_set():
            try:
                # Until something changes; at least once an interval, to pass on new alerts.
                await asyncio.wait_for(wake.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
            if closed.is_set():
                break
            if live.seq != seq:
                # Keep to one push per interval, and do not split a burst: wait for its end (bounded).
                first, due = loop.time(), pushed_at + interval
                if first - pushed_at < QUIET_S:  # a steady stream
                    earliest = latest = due
                else:
                    earliest, latest = max(due, first + GATHER_MIN_S), max(first + GATHER_MAX_S, due + EXTEND_S)
                while (wait := max(earliest, min(last_change[0] + QUIET_S, latest)) - loop.time()) > 0:
                    if await sleep_unless_closed(wait):
                        break
                if closed.is_set():
                    break
            wake.clear()
            if alerts is not None:
                alert_seq, fresh = alerts.since_seq(alert_seq)
                for alert in fresh:
                    await websocket.send_text(json.dumps({"type": "alert", "time": iso(utc_now()), "alert": alert}))
            taken_at = loop.time()
            changes = live.changes_since(seq)
            if changes is None:
                seq, known = await snapshot()
                pushed_at = taken_at
                continue
            changed_now = [p for p in changes.changed if inside(p)]
            left = [p.icao24 for p in changes.changed if not inside(p) and p.icao24 in known]
            removed = [i for i in changes.removed if i in known] + left
            seq = changes.seq
            if not changed_now and not removed:
                continue
            known.difference_update(removed)
            known.update(p.icao24 for p in changed_now)
            pushed_at = taken_at
            await websocket.send_text(message("update", {"changed": [cache.get_bytes(p) for p in changed_now],
                                                          "removed": [json.dumps(i).encode() for i in removed]}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        live.unsubscribe(changed)
        watcher.cancel()
