"""The independent recount (infra/demo/observe.py) that the demo and the fault tests check the pipeline
against: the function's own rules applied to records read back from Kafka."""
from __future__ import annotations

import json
from types import SimpleNamespace

from infra.demo.observe import canonical, recount
from saved_events import load_event


def record(offset: int, value, partition: int = 0):
    raw = value if value is None or isinstance(value, bytes) else json.dumps(value).encode()
    return SimpleNamespace(partition=partition, offset=offset, value=raw, headers=[])  # no content-type: JSON


def test_each_record_is_counted_once_by_what_the_function_must_do_with_it():
    airborne = load_event("raw_state.json")
    spanish = {**airborne, "icao24": "343abc", "origin_country": "Spain"}
    on_ground = {**airborne, "icao24": "3c6445", "on_ground": True}
    huge = {**airborne, "icao24": "3c6446", "callsign": "X" * 300_000}  # no SNS message can carry it
    records = [record(0, airborne), record(1, airborne), record(2, spanish), record(3, on_ground),
               record(4, b"{not json"), record(5, None), record(6, b"\xff\xfe"), record(7, huge)]
    # WHEN the records are recounted
    got = recount(records)
    # THEN every record lands in exactly one bucket, as the function would decide
    assert got.records == 8 and got.filtered == 1
    assert set(got.invalid) == {(0, 4), (0, 5), (0, 6)}  # bad JSON, a tombstone, bad UTF-8
    assert set(got.too_large) == {(0, 7)}
    assert sum(got.notifications.values()) == 3 and got.in_air == 4
    german = [n for n in got.notifications if json.loads(n)["icao24"] == "3c6444"]
    assert len(german) == 1 and got.notifications[german[0]] == 2  # a duplicate must arrive twice
    assert got.expected_at(["Germany", "France"]) == 2 and got.expected_at(["Spain"]) == 1
    assert got.unique_states == 4  # the German one (sent twice), the Spanish, the grounded and the huge one


def test_canonical_ignores_key_order():
    assert canonical({"b": 1, "a": "é"}) == canonical({"a": "é", "b": 1}) == '{"a":"é","b":1}'
