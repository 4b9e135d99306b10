"""Lambda entry point of flight-alerts: Kafka ESM batch -> alert rules per aircraft -> SNS FlightAlerts.

Handler: ``alerts_handler.lambda_handler``. Records are read by the same code as flight-processor
(kafka_esm.read_event) and filtered by the same rules (flight_transform via alert_rules.observe).
Returns
  {"received", "in_air", "filtered", "stale", "alerts", "republished", "published", "failed",
   "state_writes", "batchItemFailures": [...], "failureReasons": [...]}
  stale        positions not newer than the aircraft's stored state (redelivered or out of order)
  state_writes conditional writes of aircraft state: only where it changed or was due a refresh
               (alert_rules.must_store); most positions write nothing
  alerts       alerts raised by this batch's positions
  republished  alerts of an earlier, interrupted invocation published again (possible duplicates)
A record is a failure when it cannot be read, is malformed, or its aircraft's state could not be
written or its alerts could not be published (then the record is redelivered and nothing is lost).
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from alert_settings import AlertSettings
from alert_state import StateStore, StoredState
from flight_domain.alert_rules import AircraftState, Observation, fold, must_store, observe, refresh_after_s
from flight_domain.flight_transform import judge_records
from flight_domain.geofence import GeofenceError
from flight_domain.geofence_source import GeofenceSource
from flight_metrics import emit_invocation_metrics
from pipeline_common.logs import install_json_logging
from kafka_esm import failure_response, read_event
from lambda_clients import RuntimeSlot, client as _client
from sns_batch import Notification, SnsBatchPublisher

logger = logging.getLogger(__name__)

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
METRICS = {"received": "Received", "in_air": "InAir", "published": "Published", "failed": "Failed",
           "alerts": "AlertsRaised", "republished": "AlertsRepublished"}
SAVE_ATTEMPTS = 3


@dataclass
class AlertsRuntime:
    settings: AlertSettings
    sns: object
    cloudwatch: object
    store: StateStore
    geofences: GeofenceSource
    executor: ThreadPoolExecutor

    def publisher(self) -> SnsBatchPublisher:
        f = self.settings.function
        return SnsBatchPublisher(self.sns, f.sns_topic_arn, executor=self.executor,
                                 max_attempts=f.publish_max_attempts, backoff_s=f.publish_backoff_s)

    def close(self) -> None:
        self.executor.shutdown(wait=True)


_slot: RuntimeSlot[AlertsRuntime] = RuntimeSlot()


def configure(settings: AlertSettings | None = None, *, sns_client=None, cloudwatch_client=None,
              dynamodb_client=None, s3_client=None) -> AlertsRuntime:
    """Build (or rebuild) the container's runtime; values passed in win, the rest comes from env."""
    def build() -> AlertsRuntime:
        s = settings or AlertSettings.from_env()
        f = s.function
        return AlertsRuntime(
            settings=s,
            sns=sns_client or _client("sns", f),
            cloudwatch=cloudwatch_client or _client("cloudwatch", f),
            store=StateStore(dynamodb_client or _client("dynamodb", f), s.table, s.state_ttl_s),
            geofences=GeofenceSource(s3_client or _client("s3", f), s.geofences_bucket,
                                     s.geofences_key, s.geofence_refresh_s),
            executor=ThreadPoolExecutor(max_workers=f.publish_concurrency, thread_name_prefix="sns-publish"),
        )
    return _slot.install(build)


def reset() -> None:
    _slot.reset()


def _current() -> AlertsRuntime:
    return _slot.current(configure)


def _outbox_entry(alert, fifo: bool) -> dict:
    entry = {"alert_id": alert.alert_id, "alert_type": alert.alert_type, "message": _encode(alert.body()),
             "attributes": alert.attributes()}
    if fifo:
        entry["extra"] = {"MessageGroupId": alert.icao24, "MessageDeduplicationId": alert.dedup_id}
    return entry


@dataclass(frozen=True, slots=True)
class _Outcome:
    t: int | None               # state time the outbox belongs to (None: nothing to publish)
    outbox: tuple[dict, ...]
    new_alerts: int
    stale: int
    written: bool               # a conditional write of the state was made


@dataclass(frozen=True, slots=True)
class _Write:
    final: AircraftState
    outbox: tuple[dict, ...]
    new_alerts: int
    stale: int
    expected_t: int | None


def _judge(settings: AlertSettings, stored: StoredState | None, items: list[tuple[int, Observation]],
           fences) -> _Outcome | _Write:
    """Fold the aircraft's positions onto its stored state: the outcome when nothing has to be written,
    else the conditional write to make (must_store: only when the state changes, or is refreshed)."""
    state = stored.state if stored else None
    carried = stored.pending if stored else ()
    final, alerts, stale = fold(state, [obs for _, obs in items], fences, settings.watchlist, settings.watch_gap_s)
    refresh_s = refresh_after_s(items[0][1].icao24, settings.state_refresh_s)
    if final is None or not must_store(state, final, alerts, refresh_s):
        # Old news, or nothing the next position would be judged by changed: no write. An outbox an
        # interrupted invocation left still goes out, and is cleared under the stored state's time.
        return _Outcome((state.t if carried else None), carried, 0, stale, False)
    outbox = carried + tuple(_outbox_entry(a, settings.fifo) for a in alerts)
    return _Write(final, outbox, len(alerts), stale, state.t if stored else None)


def _apply(runtime: AlertsRuntime, icao24: str, decision: _Write, items: list[tuple[int, Observation]],
           fences) -> _Outcome:
    """Write the aircraft's new state with its outbox; on a concurrent write, judge its positions again
    from the state that writer left."""
    for _attempt in range(SAVE_ATTEMPTS):
        if runtime.store.save(icao24, decision.final, decision.outbox, decision.expected_t):
            return _Outcome(decision.final.t, decision.outbox, decision.new_alerts, decision.stale, True)
        judged = _judge(runtime.settings, runtime.store.get(icao24), items, fences)
        if isinstance(judged, _Outcome):
            return judged
        decision = judged
    raise RuntimeError(f"state of {icao24} kept changing under {SAVE_ATTEMPTS} conditional writes")


def process_event(event: object, runtime: AlertsRuntime) -> dict:
    started = time.perf_counter()
    records = read_event(event)
    kept, failures, filtered = judge_records(records, observe)
    by_aircraft: dict[str, list[tuple[int, Observation]]] = {}
    for index, obs in kept:
        by_aircraft.setdefault(obs.icao24, []).append((index, obs))

    in_air = sum(len(items) for items in by_aircraft.values())
    stale = raised = republished = state_writes = 0
    outgoing: list[Notification] = []
    written: dict[str, tuple[int, int]] = {}  # icao24 -> (state time, notifications sent)
    if by_aircraft:
        try:
            fences = runtime.geofences.current()
            stored = runtime.store.load(list(by_aircraft))
        except (ClientError, BotoCoreError, GeofenceError, RuntimeError) as exc:
            reason = f"alert state or geofences unavailable: {exc}"
            for items in by_aircraft.values():
                failures.update({index: reason for index, _ in items})
            by_aircraft, fences, stored = {}, (), {}

        # Judged here; only the aircraft whose state changes (or is due a refresh) are written.
        outcomes: dict[str, _Outcome | Exception] = {}
        writes: list[tuple[str, _Write]] = []
        for icao24, items in by_aircraft.items():
            judged = _judge(runtime.settings, stored.get(icao24), items, fences)
            if isinstance(judged, _Write):
                writes.append((icao24, judged))
            else:
                outcomes[icao24] = judged

        def apply(entry):
            icao24, decision = entry
            try:
                return icao24, _apply(runtime, icao24, decision, by_aircraft[icao24], fences)
            except (ClientError, BotoCoreError, RuntimeError) as exc:
                return icao24, exc

        # One conditional write per such aircraft: concurrently, as the publishes are (different items).
        outcomes.update(runtime.executor.map(apply, writes) if len(writes) > 1 else map(apply, writes))
        for icao24, items in by_aircraft.items():
            outcome = outcomes[icao24]
            if isinstance(outcome, Exception):
                failures.update({index: f"alert state not written: {outcome}" for index, _ in items})
                continue
            stale += outcome.stale
            raised += outcome.new_alerts
            republished += len(outcome.outbox) - outcome.new_alerts
            state_writes += outcome.written
            if outcome.t is not None and outcome.outbox:
                written[icao24] = (outcome.t, len(outcome.outbox))
                outgoing.extend(Notification(items[0][0], e["message"], e["attributes"], e.get("extra"))
                                for e in outcome.outbox)

    failed_aircraft = set()
    for failure in runtime.publisher().publish(outgoing):
        failures[failure.ref] = f"alert publish failed: {failure.reason}"
        failed_aircraft.add(failure.ref)
    published = sum(1 for n in outgoing if n.ref not in failed_aircraft)
    for icao24, (t, _sent) in written.items():
        if by_aircraft[icao24][0][0] in failed_aircraft:
            continue  # the outbox stays; the redelivered record publishes it
        try:
            runtime.store.clear_pending(icao24, t)
        except (ClientError, BotoCoreError) as exc:
            # Published but still in the outbox: the next invocation sends it again (a counted duplicate).
            logger.warning("could not clear the alert outbox of %s: %s", icao24, exc, extra={"icao24": icao24})

    response = failure_response(records, failures)
    counts = {"received": len(records), "in_air": in_air, "filtered": filtered, "stale": stale,
              "alerts": raised, "republished": republished, "published": published, "failed": len(failures),
              "state_writes": state_writes}
    f = runtime.settings.function
    if f.metrics_enabled:
        emit_invocation_metrics(runtime.cloudwatch, f.metrics_namespace, f.function_name, counts, METRICS)
    logger.info("processed %d records: %d in the air, %d stale, %d state writes, %d alerts raised, "
                "%d republished, %d published, %d failed", counts["received"], in_air, stale, state_writes, raised,
                republished, published, counts["failed"], extra={**counts, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    return {**counts, **response}


def lambda_handler(event, context):
    return process_event(event, _current())


# Inside a Lambda runtime this module is imported only when it is the handler: build everything at init.
if os.environ.get("LAMBDA_TASK_ROOT"):
    install_json_logging()
    logging.getLogger().setLevel(_current().settings.function.log_level)
