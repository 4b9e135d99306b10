"""WebSocket /ws/flights[?bbox=]: a snapshot, then at most once per TRACKER_WS_INTERVAL_S the aircraft
that changed and the ones that left (the picture, or the bbox). A client that fell behind the change
feed gets a fresh snapshot instead of an ever-growing backlog."""
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
    live, cache = state.live, state.json_cache

    def inside(p) -> bool:
        return bbox is None or bbox.contains(p.latitude, p.longitude)

    def message(kind: str, body: dict[str, list[str]]) -> str:
        parts = ",".join(f'"{k}":[{",".join(v)}]' for k, v in body.items())
        return f'{{"type":"{kind}","time":"{iso(utc_now())}",{parts}}}'

    async def snapshot() -> tuple[int, set[str]]:
        seq, positions = live.snapshot()
        shown = [p for p in positions if inside(p)]
        await websocket.send_text(message("snapshot", {"flights": [cache.get(p) for p in shown]}))
        return seq, {p.icao24 for p in shown}

    closed = asyncio.Event()

    async def watch_close() -> None:
        try:
            while True:
                await websocket.receive_text()  # the client may send anything; we only care it is there
        except (WebSocketDisconnect, RuntimeError):
            closed.set()

    watcher = asyncio.create_task(watch_close())
    alerts = state.alerts.buffer if state.alerts is not None else None
    alert_seq = alerts.seq if alerts is not None else 0  # alerts from now on; the page reads GET /alerts first
    try:
        seq, known = await snapshot()
        while not closed.is_set():
            try:
                await asyncio.wait_for(closed.wait(), timeout=state.config.ws_interval_s)
                break
            except asyncio.TimeoutError:
                pass
            if alerts is not None:
                alert_seq, fresh = alerts.since_seq(alert_seq)
                for alert in fresh:
                    await websocket.send_text(json.dumps({"type": "alert", "time": iso(utc_now()), "alert": alert}))
            changes = live.changes_since(seq)
            if changes is None:
                seq, known = await snapshot()
                continue
            changed = [p for p in changes.changed if inside(p)]
            left = [p.icao24 for p in changes.changed if not inside(p) and p.icao24 in known]
            removed = [i for i in changes.removed if i in known] + left
            seq = changes.seq
            if not changed and not removed:
                continue
            known.difference_update(removed)
            known.update(p.icao24 for p in changed)
            await websocket.send_text(message("update", {"changed": [cache.get(p) for p in changed],
                                                          "removed": [json.dumps(i) for i in removed]}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        watcher.cancel()
