"""Per-aircraft alert state in DynamoDB, written with conditions on the position time.

Item (table keyed on ``icao24``):
  t           N     position time of the last position written (the condition key; positions that
                    change nothing are not written: alert_rules.must_store)
  inside      L<S>  fences the aircraft was in at that position
  squawk      S     last squawk seen (absent when none was ever seen)
  watched     BOOL  WATCHLIST already raised in this appearance
  pending     S     JSON list of alerts computed but not yet confirmed published (the outbox)
  expires_at  N     the later of t and the write time, + the state TTL; DynamoDB's TTL deletes
                    aircraft not seen for that long

Why an outbox: the new state and the alerts it raised are written in ONE conditional write before
anything is published, then published, then ``pending`` is removed. A crash before the publish
leaves the alerts in ``pending`` and the next invocation for that aircraft (the redelivered record
or any later one) publishes them: nothing is lost. A crash after the publish but before the
removal publishes them again: a duplicate, counted as ``republished`` and carrying the same
alert_id (and the same SNS FIFO deduplication id, so a FIFO topic drops it).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from flight_domain.alert_rules import AircraftState

logger = logging.getLogger(__name__)

BATCH_GET_LIMIT = 100
_MAX_UNPROCESSED_ROUNDS = 8
# What a read needs: not expires_at, which only DynamoDB's TTL reads (botocore parses every attribute
# of every item: one attribute less is a fifth less parsing per state read).
_READ = {"ProjectionExpression": "#k, #t, #i, #s, #w, #p",
         "ExpressionAttributeNames": {"#k": "icao24", "#t": "t", "#i": "inside", "#s": "squawk", "#w": "watched",
                                      "#p": "pending"}}


@dataclass(frozen=True, slots=True)
class StoredState:
    state: AircraftState
    pending: tuple[dict, ...] = ()  # {"alert_id", "message", "attributes", "dedup_id", "group_id"}


def to_item(icao24: str, state: AircraftState, pending: tuple[dict, ...], ttl_s: int,
            written_at: float | None = None) -> dict:
    # Not from the position time alone: the state of a replayed past day would be born expired, and
    # DynamoDB's TTL (MiniStack's within a minute) would delete it mid-replay, so every aircraft in a
    # fence would enter it again, and every EMERGENCY and WATCHLIST be raised again.
    written = time.time() if written_at is None else written_at
    item = {"icao24": {"S": icao24}, "t": {"N": str(state.t)},
            "inside": {"L": [{"S": name} for name in sorted(state.inside)]},
            "watched": {"BOOL": state.watched}, "expires_at": {"N": str(max(state.t, int(written)) + ttl_s)}}
    if state.squawk is not None:
        item["squawk"] = {"S": state.squawk}
    if pending:
        item["pending"] = {"S": json.dumps(list(pending), separators=(",", ":"), ensure_ascii=False)}
    return item


def from_item(item: dict) -> StoredState:
    state = AircraftState(t=int(item["t"]["N"]),
                          inside=frozenset(v["S"] for v in item.get("inside", {}).get("L", [])),
                          squawk=item.get("squawk", {}).get("S"),
                          watched=bool(item.get("watched", {}).get("BOOL", False)))
    pending = tuple(json.loads(item["pending"]["S"])) if "pending" in item else ()
    return StoredState(state, pending)


class StateStore:
    def __init__(self, client, table: str, ttl_s: int, clock=time.time):
        self._client = client
        self._table = table
        self._ttl_s = ttl_s
        self._clock = clock

    def load(self, icao24s: list[str]) -> dict[str, StoredState]:
        """Current state of each aircraft that has one (strongly consistent reads)."""
        found: dict[str, StoredState] = {}
        for start in range(0, len(icao24s), BATCH_GET_LIMIT):
            keys = [{"icao24": {"S": icao24}} for icao24 in icao24s[start:start + BATCH_GET_LIMIT]]
            request = {self._table: {"Keys": keys, "ConsistentRead": True, **_READ}}
            for _round in range(_MAX_UNPROCESSED_ROUNDS):
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item["icao24"]["S"]] = from_item(item)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError(f"DynamoDB kept {len(request[self._table]['Keys'])} keys of {self._table} "
                                   "unprocessed (throttled)")
        return found

    def get(self, icao24: str) -> StoredState | None:
        item = self._client.get_item(TableName=self._table, Key={"icao24": {"S": icao24}},
                                     ConsistentRead=True, **_READ).get("Item")
        return from_item(item) if item else None

    def save(self, icao24: str, state: AircraftState, pending: tuple[dict, ...], expected_t: int | None) -> bool:
        """Write the state if nobody wrote another one since it was read (the position time is the
        version); False if the condition failed."""
        if expected_t is None:
            condition, values = "attribute_not_exists(icao24)", None
        else:
            condition, values = "t = :expected", {":expected": {"N": str(expected_t)}}
        kwargs = {"ExpressionAttributeValues": values} if values else {}
        try:
            item = to_item(icao24, state, pending, self._ttl_s, self._clock())
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression=condition, **kwargs)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise

    def clear_pending(self, icao24: str, t: int) -> bool:
        """Remove the outbox of the state written at position time t; False if a newer state replaced it
        (that writer carried these alerts over and publishes them itself)."""
        try:
            self._client.update_item(TableName=self._table, Key={"icao24": {"S": icao24}},
                                     UpdateExpression="REMOVE pending", ConditionExpression="t = :t",
                                     ExpressionAttributeValues={":t": {"N": str(t)}})
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
