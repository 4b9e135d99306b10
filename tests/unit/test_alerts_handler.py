"""flight-alerts under moto: ESM batches in, alerts out through an SQS subscriber; state in DynamoDB,
fences in S3 re-read without a redeploy; a publish that fails leaves the alert in the outbox and
the redelivered record sends it (never lost, counted when it may be a duplicate)."""
from __future__ import annotations

import base64
import json
from unittest import mock

import boto3
import pytest
from moto import mock_aws

import alerts_handler
from alert_settings import AlertSettings
from flight_domain.alert_rules import refresh_after_s
from flight_domain.flight_transform import epoch_to_iso
from flight_settings import FunctionConfigError, FunctionSettings  # FunctionConfigError is ConfigError

BOX = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "Box"},
     "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}}]}
FAR_BOX = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "Far"},
     "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [12, 10], [12, 12], [10, 12], [10, 10]]]}}]}


def state(lon, lat, t, squawk="1000", icao24="abc123", callsign="TEST1"):
    return {"icao24": icao24, "callsign": callsign, "origin_country": "Germany", "time_position": t,
            "last_contact": t, "longitude": lon, "latitude": lat, "baro_altitude": 3000.0, "geo_altitude": None,
            "on_ground": False, "velocity": 200.0, "squawk": squawk}


def esm_event(states, first_offset=0):
    records = [{"topic": "aviation-data", "partition": 0, "offset": first_offset + i, "timestamp": 1,
                "timestampType": "CREATE_TIME", "key": None, "headers": [],
                "value": base64.b64encode(json.dumps(s).encode()).decode()} for i, s in enumerate(states)]
    return {"eventSource": "SelfManagedKafka", "records": {"aviation-data-0": records}}


class Aws:
    def __init__(self, fifo=False):
        self.sns = boto3.client("sns", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        name = "FlightAlerts.fifo" if fifo else "FlightAlerts"
        attrs = {"FifoTopic": "true"} if fifo else {}
        self.topic_arn = self.sns.create_topic(Name=name, Attributes=attrs)["TopicArn"]
        qname = "alerts.fifo" if fifo else "alerts"
        self.queue_url = self.sqs.create_queue(QueueName=qname, Attributes={"FifoQueue": "true"} if fifo else {})[
            "QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn,
                           Attributes={"RawMessageDelivery": "true"})
        self.s3.create_bucket(Bucket="flight-alerts-geofences")
        self.put_fences(BOX)
        self.dynamodb.create_table(TableName="FlightAlertState", BillingMode="PAY_PER_REQUEST",
                                   KeySchema=[{"AttributeName": "icao24", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "icao24", "AttributeType": "S"}])

    def put_fences(self, doc):
        self.s3.put_object(Bucket="flight-alerts-geofences", Key="geofences.geojson", Body=json.dumps(doc).encode())

    def runtime(self, refresh_s=0, watchlist="", **env):
        settings = AlertSettings.from_env({"GEOFENCES_BUCKET": "flight-alerts-geofences",
                                           "GEOFENCE_REFRESH_S": str(refresh_s), "ALERT_WATCHLIST": watchlist, **env},
                                          function=FunctionSettings(sns_topic_arn=self.topic_arn, metrics_enabled=False))
        return alerts_handler.configure(settings, sns_client=self.sns, dynamodb_client=self.dynamodb,
                                        s3_client=self.s3, cloudwatch_client=mock.Mock())

    def stored_t(self, icao24="abc123"):
        item = self.dynamodb.get_item(TableName="FlightAlertState", Key={"icao24": {"S": icao24}})["Item"]
        return int(item["t"]["N"]), int(item["expires_at"]["N"])

    def received(self):
        out = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            MessageAttributeNames=["All"]).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append((json.loads(m["Body"]), {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield Aws()
    alerts_handler.reset()


TRACK = [state(-1, 1, 100), state(1, 1, 110, squawk="7700"), state(3, 1, 120, squawk="7700")]


def test_a_track_through_a_fence_gives_enter_emergency_exit_with_filterable_attributes(aws):
    result = alerts_handler.process_event(esm_event(TRACK), aws.runtime())
    got = aws.received()
    assert sorted(b["alert_type"] for b, _ in got) == ["EMERGENCY", "GEOFENCE_ENTER", "GEOFENCE_EXIT"]
    enter = next((b, a) for b, a in got if b["alert_type"] == "GEOFENCE_ENTER")
    assert enter[1] == {"alert_type": "GEOFENCE_ENTER", "geofence": "Box", "origin_country": "Germany"}
    assert enter[0]["geofence"] == "Box" and enter[0]["icao24"] == "abc123" and enter[0]["time_position"]
    assert result["alerts"] == 3 and result["published"] == 3 and result["batchItemFailures"] == []


def test_redelivery_raises_nothing_twice(aws):
    runtime = aws.runtime()
    alerts_handler.process_event(esm_event(TRACK), runtime)
    aws.received()
    again = alerts_handler.process_event(esm_event(TRACK), runtime)
    assert aws.received() == []
    assert again["stale"] == 3 and again["alerts"] == 0 and again["republished"] == 0


def test_a_failed_publish_is_not_lost_the_redelivered_record_sends_it(aws):
    runtime = aws.runtime()
    # GIVEN SNS refuses the first publish
    with mock.patch.object(runtime.sns, "publish_batch", side_effect=aws.sns.exceptions.InvalidParameterException(
            {"Error": {"Code": "InvalidParameter", "Message": "no"}}, "PublishBatch")):
        first = alerts_handler.process_event(esm_event(TRACK[:2]), runtime)
    # THEN the record is reported as failed (the trigger redelivers it) and nothing arrived
    assert first["batchItemFailures"] == [{"itemIdentifier": {"partition": "aviation-data-0", "offset": 0}}]
    assert aws.received() == []
    # WHEN it is redelivered, the alerts of the outbox go out, counted as republished
    second = alerts_handler.process_event(esm_event(TRACK[:2]), runtime)
    assert sorted(b["alert_type"] for b, _ in aws.received()) == ["EMERGENCY", "GEOFENCE_ENTER"]
    assert second["republished"] == 2 and second["alerts"] == 0 and second["batchItemFailures"] == []
    # and the outbox is empty afterwards: a third delivery sends nothing
    alerts_handler.process_event(esm_event(TRACK[:2]), runtime)
    assert aws.received() == []


def test_new_fences_are_picked_up_without_a_redeploy(aws):
    runtime = aws.runtime(refresh_s=0)
    alerts_handler.process_event(esm_event([state(1, 1, 100)]), runtime)
    assert [b["geofence"] for b, _ in aws.received()] == ["Box"]
    # WHEN `make geofences` replaces the object with a fence elsewhere
    aws.put_fences(FAR_BOX)
    alerts_handler.process_event(esm_event([state(11, 11, 110)], 1), runtime)
    # THEN the running function enters the new fence (and raises no EXIT for the removed one)
    assert [(b["alert_type"], b["geofence"]) for b, _ in aws.received()] == [("GEOFENCE_ENTER", "Far")]


def test_an_invalid_fences_object_keeps_the_fences_already_loaded(aws):
    runtime = aws.runtime(refresh_s=0)
    alerts_handler.process_event(esm_event([state(-1, 1, 100)]), runtime)
    aws.s3.put_object(Bucket="flight-alerts-geofences", Key="geofences.geojson", Body=b"{not json")
    alerts_handler.process_event(esm_event([state(1, 1, 110)], 1), runtime)
    assert [b["geofence"] for b, _ in aws.received()] == ["Box"]


def test_unreadable_and_malformed_records_are_batch_item_failures_with_reasons(aws):
    event = esm_event([state(1, 1, 100)])
    event["records"]["aviation-data-0"].append({"topic": "aviation-data", "partition": 0, "offset": 1,
                                                "value": base64.b64encode(b"{oops").decode()})
    event["records"]["aviation-data-0"].append({"topic": "aviation-data", "partition": 0, "offset": 2,
                                                "value": base64.b64encode(json.dumps({"icao24": "x"}).encode()).decode()})
    result = alerts_handler.process_event(event, aws.runtime())
    reasons = {r["offset"]: r["reason"] for r in result["failureReasons"]}
    assert set(reasons) == {1, 2} and "not valid JSON" in reasons[1] and "invalid state" in reasons[2]
    assert len(aws.received()) == 1


def test_a_state_without_squawk_or_position_raises_nothing_and_fails_nothing(aws):
    no_position = state(None, None, 100)
    result = alerts_handler.process_event(esm_event([no_position, state(5, 5, 100, squawk=None)]), aws.runtime())
    assert result["failed"] == 0 and result["alerts"] == 0 and aws.received() == []


def test_fifo_topic_entries_carry_group_and_deduplication_ids(aws):
    runtime = aws.runtime()
    sent = []
    real = runtime.sns.publish_batch

    def spy(**kwargs):
        sent.extend(kwargs["PublishBatchRequestEntries"])
        return real(**kwargs)

    settings = AlertSettings.from_env({"GEOFENCES_BUCKET": "flight-alerts-geofences"}, function=FunctionSettings(
        sns_topic_arn=aws.topic_arn + ".fifo", metrics_enabled=False))
    assert settings.fifo
    runtime = alerts_handler.configure(settings, sns_client=mock.Mock(publish_batch=spy), dynamodb_client=aws.dynamodb,
                                       s3_client=aws.s3, cloudwatch_client=mock.Mock())
    alerts_handler.process_event(esm_event([state(1, 1, 100)]), runtime)
    assert sent and sent[0]["MessageGroupId"] == "abc123" and len(sent[0]["MessageDeduplicationId"]) == 64


def test_missing_bucket_setting_is_named():
    with pytest.raises(FunctionConfigError, match="GEOFENCES_BUCKET"):
        AlertSettings.from_env({"SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:FlightAlerts"})
    with pytest.raises(FunctionConfigError, match="ALERT_WATCHLIST='nope' watchlist entry"):
        AlertSettings.from_env({"SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:FlightAlerts",
                                "GEOFENCES_BUCKET": "b", "ALERT_WATCHLIST": "nope"})


def test_a_concurrent_writer_is_detected_by_the_condition_and_nothing_is_raised_twice(aws):
    runtime = aws.runtime()
    alerts_handler.process_event(esm_event([state(1, 1, 110)]), runtime)
    assert [b["alert_type"] for b, _ in aws.received()] == ["GEOFENCE_ENTER"]
    # WHEN another invocation read the aircraft's state before that write (it saw no state at all)
    with mock.patch.object(runtime.store, "load", return_value={}):
        result = alerts_handler.process_event(esm_event([state(1.5, 1, 120)], 1), runtime)
    # THEN its conditional write fails, it starts again from the stored state, and raises no second ENTER
    assert aws.received() == [] and result["alerts"] == 0 and result["failed"] == 0


def run_one_by_one(runtime, states, first_offset=0):
    """Each state in its own invocation, as a steady stream delivers an aircraft every 10 s."""
    return [alerts_handler.process_event(esm_event([s], first_offset + i), runtime) for i, s in enumerate(states)]


def test_positions_that_change_nothing_are_not_written_until_the_refresh_is_due(aws):
    runtime = aws.runtime(ALERT_STATE_REFRESH_S="300")
    due = refresh_after_s("abc123", 300)   # this aircraft's interval: 150 to 300 s
    assert 150 <= due <= 300
    # GIVEN an aircraft outside every fence, heard every 10 s until just before its refresh is due
    quiet = [state(5, 5, 100 + 10 * n) for n in range(30) if 10 * n < due]
    results = run_one_by_one(runtime, quiet)
    # THEN only its first position was written (the state is still the one of t=100)
    assert [r["state_writes"] for r in results] == [1] + [0] * (len(quiet) - 1)
    assert aws.stored_t()[0] == 100
    # WHEN its interval of position time has passed since the stored one, the state (and its TTL) is refreshed
    before = aws.stored_t()[1]
    assert run_one_by_one(runtime, [state(5, 5, 100 + due)], 30)[0]["state_writes"] == 1
    assert aws.stored_t()[0] == 100 + due and aws.stored_t()[1] >= before
    # AND a change is written at once: entering the fence
    entered = run_one_by_one(runtime, [state(1, 1, 110 + due)], 31)[0]
    assert (entered["state_writes"], entered["alerts"]) == (1, 1) and aws.stored_t()[0] == 110 + due


def test_a_redelivered_position_newer_than_the_stored_state_raises_nothing_again(aws):
    runtime = aws.runtime(ALERT_STATE_REFRESH_S="300")
    # GIVEN a track that entered Box at 110 and stayed inside (120 and 130 wrote nothing)
    track = [state(-1, 1, 100), state(1, 1, 110), state(1.2, 1, 120), state(1.4, 1, 130)]
    run_one_by_one(runtime, track)
    assert [b["alert_type"] for b, _ in aws.received()] == ["GEOFENCE_ENTER"] and aws.stored_t()[0] == 110
    # WHEN 120 and 130 are delivered again (newer than the stored state: they are judged again)
    again = alerts_handler.process_event(esm_event(track[2:], 2), runtime)
    # THEN they are judged against the state they left unchanged the first time: nothing is raised
    assert (again["alerts"], again["state_writes"], again["failed"]) == (0, 0, 0) and aws.received() == []
    # AND the exit is raised once, and the whole track delivered again raises nothing
    run_one_by_one(runtime, [state(3, 1, 140)], 4)
    assert [b["alert_type"] for b, _ in aws.received()] == ["GEOFENCE_EXIT"]
    alerts_handler.process_event(esm_event(track + [state(3, 1, 140)]), runtime)
    assert aws.received() == []


def test_an_outbox_left_by_a_failed_publish_goes_out_with_the_next_position_that_writes_nothing(aws):
    runtime = aws.runtime(ALERT_STATE_REFRESH_S="300")
    # GIVEN the ENTER of t=110 stored in the outbox, and SNS refusing it
    refused = aws.sns.exceptions.InvalidParameterException({"Error": {"Code": "InvalidParameter", "Message": "no"}},
                                                           "PublishBatch")
    with mock.patch.object(runtime.sns, "publish_batch", side_effect=refused):
        first = alerts_handler.process_event(esm_event([state(1, 1, 110)]), runtime)
    assert first["batchItemFailures"] and aws.received() == []
    # WHEN the aircraft's next position changes nothing (no write of its own)
    second = alerts_handler.process_event(esm_event([state(1.2, 1, 120)], 1), runtime)
    # THEN the outbox is published and cleared: nothing is lost, and nothing is sent a third time
    assert [b["alert_type"] for b, _ in aws.received()] == ["GEOFENCE_ENTER"]
    assert (second["republished"], second["state_writes"], second["batchItemFailures"]) == (1, 0, [])
    alerts_handler.process_event(esm_event([state(1.4, 1, 130)], 2), runtime)
    assert aws.received() == []


def test_the_watch_gap_is_exact_at_its_boundary_although_quiet_positions_are_not_written(aws):
    # GIVEN a gap of 60 s, far below the 300 s between refreshes of a state that does not change
    runtime = aws.runtime(ALERT_STATE_REFRESH_S="300", WATCH_GAP_S="60", ALERT_WATCHLIST="callsign=DLH*")
    watched = lambda t: state(5, 5, t, icao24="3c6444", callsign="DLH400")  # noqa: E731
    # WHEN it is heard every 10 s, then after exactly 60 s, then after 61 s
    times = [100, 110, 120, 130, 190, 251, 261]
    run_one_by_one(runtime, [watched(t) for t in times])
    # THEN WATCHLIST at its first position and at the one 61 s after the previous: not at the 60 s one
    assert [b["time_position"] for b, _ in aws.received() if b["alert_type"] == "WATCHLIST"] == \
        [epoch_to_iso(100), epoch_to_iso(251)]
    assert aws.stored_t("3c6444")[0] == 261  # a watched aircraft's last position is always stored
