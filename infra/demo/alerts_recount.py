"""The alerts a run's records should raise, recounted without the pipeline: for `make demo`.

The run's records are read back from Kafka (observe.read_topic: each partition in offset order, the
order the alerts mapping delivers them; an aircraft's records share a partition, keyed by icao24), and put
through the function's own pure rules (alert_rules.fold) starting from the alert state the table
held before the run, with the fences the function reads from S3. Nothing of the trigger, the
function's invocations, DynamoDB writes, SNS or SQS is trusted: what the subscriber received is then
compared, alert id by alert id.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from flight_domain.alert_rules import AircraftState, Watchlist, fold, observe
from alert_state import from_item
from flight_domain.flight_transform import InvalidState
from flight_domain.geofence import Fence, parse_fences
from infra.deploy import alerts_resources
from infra.demo.observe import read_topic
from trigger.mapping import TriggerConfig
from trigger.runner import Trigger


def snapshot_state(dynamodb, table: str) -> tuple[dict[str, AircraftState], set[str]]:
    """Every aircraft's state in the table now, and the ids of alerts still in an outbox (they may be
    published when that aircraft is next seen: allowed, not expected)."""
    states, carried = {}, set()
    kwargs = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            stored = from_item(item)
            states[item["icao24"]["S"]] = stored.state
            carried.update(entry["alert_id"] for entry in stored.pending)
        if "LastEvaluatedKey" not in page:
            return states, carried
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_fences(s3, bucket: str, key: str) -> tuple[Fence, ...]:
    return parse_fences(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


@dataclass
class AlertRecount:
    expected: dict[str, str] = field(default_factory=dict)  # alert_id -> alert_type
    stale: int = 0

    def by_type(self) -> dict[str, int]:
        return dict(Counter(self.expected.values()))


def recount_alerts(records: Iterable, fences: tuple[Fence, ...], watchlist: Watchlist, watch_gap_s: int,
                   initial: dict[str, AircraftState]) -> AlertRecount:
    """``records``: the run's Kafka records, each partition's in offset order (observe.read_topic)."""
    recount, states = AlertRecount(), dict(initial)
    for record in records:
        try:
            obs, _ = observe(json.loads(record.value))
        except (TypeError, ValueError, InvalidState):  # dead-lettered by the function too
            continue
        if obs is None:
            continue
        final, alerts, stale = fold(states.get(obs.icao24), [obs], fences, watchlist, watch_gap_s)
        recount.stale += stale
        if final is not None:
            states[obs.icao24] = final
        recount.expected.update((a.alert_id, a.alert_type) for a in alerts)
    return recount


class DemoAlerts:
    """The alerts side of `make demo`: deploys it, runs its own mapping (a second Trigger with its own
    consumer group) beside flight-processor's, then reconciles what the subscriber received against
    recount_alerts. Kept here so that infra/demo/run.py only calls it."""

    def __init__(self, clients, topic: str, kafka, run_id: str, since, say):
        self._resources, self._clients, self._topic, self._kafka = alerts_resources, clients, topic, kafka
        self.settings = alerts_resources.AlertResourceSettings.from_env()
        say(f"deploying the alerts side ({self.settings.topic}, {self.settings.function_name})")
        deployed = alerts_resources.deploy(self.settings, clients, say=lambda m: say("  " + m))
        self.bucket = deployed["geofences_bucket"]
        stale = alerts_resources.receive_alerts(self.settings, clients, quiet_s=1.0, on_alert=lambda _b: None)
        if stale:
            say(f"discarded {len(stale)} alert(s) left in {self.settings.queue} by an earlier run")
        # The state the function starts from: the recount starts from the same.
        self.initial, self.carried = snapshot_state(clients.dynamodb, self.settings.table)
        self.trigger = Trigger(TriggerConfig.from_env(
            topic=topic, group_id=f"demo-alerts-{run_id}", starting_position="AT_TIMESTAMP",
            starting_position_timestamp=since.timestamp(), function_name=self.settings.function_name,
            dlq_topic=f"{topic}-alerts-dlq", batch_size=500, kafka=kafka))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.trigger.run, kwargs={"stop_event": self._stop},
                                                      name="demo-alerts-trigger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def reconcile(self, since_ms: int) -> tuple[dict, list[tuple[str, bool, str]]]:
        received = self._resources.receive_alerts(self.settings, self._clients, quiet_s=4.0, on_alert=lambda _b: None)
        ids = Counter(body.get("alert_id") for body in received)
        fences = read_fences(self._clients.s3, self.bucket, self.settings.key)
        recount = recount_alerts(read_topic(self._kafka, self._topic, since_ms), fences,
                                 Watchlist.parse(self.settings.watchlist),
                                 int(self.settings.function_env.get("WATCH_GAP_S", 1800)), self.initial)
        expected = set(recount.expected)
        missing = expected - set(ids)
        unexpected = set(ids) - expected - self.carried
        duplicates = sum(ids.values()) - len(ids)
        summary = {"expected_by_recount": len(expected), "received": sum(ids.values()), "unique": len(ids),
                   "duplicates": duplicates, "missing": len(missing), "unexpected": len(unexpected),
                   "by_type": recount.by_type(), "stale_positions": recount.stale, "fences": len(fences),
                   "trigger_committed": self.trigger.stats.committed}
        checks = [("alerts: the subscriber got every alert the recount expects", not missing,
                   f"{len(expected) - len(missing)} of {len(expected)}"),
                  ("alerts: none the recount does not expect", not unexpected, f"{len(unexpected)} unexpected")]
        return summary, checks
