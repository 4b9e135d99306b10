"""The alert state's TTL on the real AWS endpoint (MiniStack deletes expired items every 60 s): the
state of a replayed past day survives, an item whose expires_at has passed does not."""
from __future__ import annotations

import time
import uuid

import pytest

from alert_state import StateStore
from flight_domain.alert_rules import AircraftState
from infra.deploy import alerts_resources
from pipeline_common.aws_clients import AwsClients

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = 1_633_564_800  # 2021-10-07 00:00 UTC


def test_a_replayed_days_alert_state_outlives_the_ttl_sweep_and_an_expired_one_does_not(stack):
    # GIVEN the deployer's state table (TTL on expires_at) and the function's store with a 1-hour TTL
    clients = AwsClients()
    settings = alerts_resources.AlertResourceSettings.from_env(table=f"clock-ttl-{uuid.uuid4().hex[:6]}")
    alerts_resources.ensure_table(settings, clients, say=lambda _m: None)
    store = StateStore(clients.dynamodb, settings.table, 3600)
    try:
        # WHEN it writes the state of a position of 2021-10-07 and of a live one, and an item that expired
        store.save("aaaaaa", AircraftState(t=DAY, squawk="7700"), (), None)
        store.save("bbbbbb", AircraftState(t=int(time.time())), (), None)
        clients.dynamodb.put_item(TableName=settings.table, Item={
            "icao24": {"S": "cccccc"}, "t": {"N": str(DAY)}, "expires_at": {"N": str(int(time.time()) - 1)}})
        # ... and the endpoint's TTL sweep runs (every 60 s)
        keys = lambda: {i["icao24"]["S"] for i in clients.dynamodb.scan(TableName=settings.table)["Items"]}  # noqa: E731
        deadline = time.monotonic() + 90
        while "cccccc" in keys() and time.monotonic() < deadline:
            time.sleep(2)
        # THEN the expired item is gone, and both states written by the store are still there
        assert keys() == {"aaaaaa", "bbbbbb"}
        assert store.get("aaaaaa").state.squawk == "7700"
    finally:
        clients.dynamodb.delete_table(TableName=settings.table)
