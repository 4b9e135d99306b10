"""Event source mapping features on the real broker and the real endpoint (MiniStack): FilterCriteria,
mappings declared in the template or a file, several mappings per topic and per function, SNS and S3
on-failure destinations, and the CloudWatch metrics.

The function and helpers are test_trigger_esm's: it records each event under EVENT_DIR/<topic>/.
"""
from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import boto3
import pytest
from kafka import KafkaConsumer, TopicPartition

from test_trigger_esm import (_drop_topics_afterwards, _trigger_env, config, delivered, event_dir,  # noqa: F401
                              flights, log_tail, new_topic, produce, raising_function, received,
                              reporting_function)
from trigger import Trigger
from trigger.__main__ import main
from trigger.declarations import load_mappings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "aws" / "template.yaml"


def committed_to_end(stack, group: str, topic: str) -> bool:
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(tps)
        return all(consumer.committed(tp) == ends[tp] for tp in tps if ends[tp])
    finally:
        consumer.close()


def test_a_filtered_mapping_invokes_only_for_matching_records_and_commits_every_offset(
        stack, reporting_function, event_dir):
    # GIVEN 30 flights, two plain-text records and a tombstone
    topic, dlq = new_topic(stack)
    produce(stack, topic, flights(30) + [(b"x", b"not json", None), (b"y", b"error", None), (b"z", None, None)])
    pattern = json.dumps({"value": {"n": [{"numeric": ["<", 10]}]}})

    # WHEN a mapping filtered on n < 10 drains the topic
    cfg = config(stack, topic, dlq, reporting_function, filter_criteria={"Filters": [{"Pattern": pattern}]})
    stats = Trigger(cfg).run(until_idle_s=3, duration=120)

    # THEN the function saw exactly the 10 matching flights, the other 23 records were filtered out ...
    values = [json.loads(__import__("base64").b64decode(r["value"]))["n"]
              for e in received(event_dir, topic) for rs in e["records"].values() for r in rs]
    assert sorted(values) == list(range(10))
    assert (stats.consumed, stats.filtered, stats.succeeded) == (33, 23, 10)
    # ... and every offset, filtered or not, is committed (the lag is zero)
    assert committed_to_end(stack, cfg.group_id, topic)


def test_the_template_mapping_delivers_like_the_same_mapping_given_by_flags(stack, reporting_function, event_dir):
    topic, dlq = new_topic(stack, partitions=2)
    produce(stack, topic, flights(25))
    # GIVEN the template's mapping for this topic and function, and the same mapping from flags
    declared = next(m for m in load_mappings(TEMPLATE, {
        "KafkaTopic": topic, "FunctionName": reporting_function, "ConsumerGroupId": f"it-tpl-{uuid.uuid4().hex[:6]}",
        "OnFailureDestination": dlq, "MaximumBatchingWindowInSeconds": "0"}) if m.name == "EventSourceMapping")
    flagged = config(stack, topic, dlq, reporting_function, maximum_batching_window_s=0.0, batch_size=100)
    # WHEN each drains the topic in its own group
    by_template = Trigger(declared).run(until_idle_s=3, duration=120)
    first = len(received(event_dir, topic))
    by_flags = Trigger(flagged).run(until_idle_s=3, duration=120)
    events = received(event_dir, topic)
    # THEN both delivered every record once, the same records
    assert by_template.succeeded == by_flags.succeeded == 25
    assert sorted(delivered(events[:first])) == sorted(delivered(events[first:]))
    assert declared.on_failure_destination == f"kafka://{dlq}" and declared.report_batch_item_failures


def test_several_mappings_each_with_its_own_group_all_get_every_record(stack, reporting_function, event_dir,
                                                                       tmp_path):
    # GIVEN two topics; two mappings on the first (one function twice), one on the second, in one file
    first, dlq1 = new_topic(stack)
    second, dlq2 = new_topic(stack, partitions=1)
    produce(stack, first, flights(40))
    produce(stack, second, flights(15, start=100))
    run = uuid.uuid4().hex[:6]

    def mapping(topic, group):
        return {"FunctionName": reporting_function, "Topics": [topic], "MaximumBatchingWindowInSeconds": 0,
                "StartingPosition": "TRIM_HORIZON", "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": f"it-{group}-{run}"}}
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps({"EventSourceMappings": [mapping(first, "a"), mapping(first, "b"),
                                                        mapping(second, "c")]}))

    # WHEN one `python -m trigger --mappings` process runs them until they are drained
    assert main(["--mappings", str(path), "--until-idle-s", "3", "--duration", "120"]) == 0

    # THEN each record of the first topic reached the function twice (once per mapping), the second's once
    on_first = delivered(received(event_dir, first))
    assert len(on_first) == 80 and len(set(on_first)) == 40
    assert sorted(delivered(received(event_dir, second))) == [(0, i) for i in range(15)]
    # AND the mappings' metrics reached CloudWatch under AWS's names, one series per mapping
    cw = boto3.client("cloudwatch")
    series = cw.list_metrics(Namespace="AWS/Lambda", MetricName="PolledEventCount")["Metrics"]
    uuids = {load.mapping_uuid for load in load_mappings(path)}
    assert uuids <= {d["Value"] for m in series for d in m["Dimensions"] if d["Name"] == "EventSourceMappingUUID"}


def test_two_trigger_processes_with_their_own_groups_each_get_every_record(stack, reporting_function, event_dir,
                                                                           spawn):
    # GIVEN one topic and two `python -m trigger` processes, each a mapping with its own group (flags/variables)
    topic, dlq = new_topic(stack)
    produce(stack, topic, flights(60))
    run = uuid.uuid4().hex[:6]
    procs = [spawn(_trigger_env(stack, topic, dlq, reporting_function, f"it-proc-{i}-{run}", TRIGGER_METRICS="false"),
                   "--until-idle-s", "3") for i in (1, 2)]
    # WHEN both drain the topic
    for proc in procs:
        assert proc.wait(timeout=120) == 0, log_tail(proc)
    # THEN every record reached the function twice: once per mapping
    got = delivered(received(event_dir, topic))
    assert len(got) == 120 and len(set(got)) == 60


@pytest.mark.slow  # usually ~5 s; up to ~70 s when a join on the fresh topic needs the 60 s safety net
def test_sigterm_stops_every_mapping_of_a_process_cleanly(stack, reporting_function, event_dir, spawn, tmp_path):
    # GIVEN one process running two mappings (own groups) that have delivered what was produced
    topic, dlq = new_topic(stack, partitions=2)
    produce(stack, topic, flights(20))
    run = uuid.uuid4().hex[:6]
    path = tmp_path / "mappings.yaml"
    path.write_text("\n".join(
        f"- FunctionName: {reporting_function}\n  Topics: [{topic}]\n  MaximumBatchingWindowInSeconds: 0\n"
        f"  SelfManagedKafkaEventSourceConfig: {{ConsumerGroupId: it-term-{g}-{run}}}" for g in "ab"))
    proc = spawn(_trigger_env(stack, topic, dlq, reporting_function, "unused", TRIGGER_METRICS="false"),
                 "--mappings", str(path))
    # (kafka-python can hang joining a group on a topic created just before; the safety net recreates
    # the consumer after 60 s: see trigger/consumer_group.py)
    deadline = time.monotonic() + 100
    while len(delivered(received(event_dir, topic))) < 40:
        assert time.monotonic() < deadline and proc.poll() is None, log_tail(proc)
        time.sleep(0.2)
    # WHEN it gets SIGTERM
    proc.send_signal(signal.SIGTERM)
    # THEN it exits 0, both mappings having stopped and committed everything
    assert proc.wait(timeout=60) == 0, log_tail(proc)
    assert proc.log_path.read_text().count("trigger stopped") == 2
    assert all(committed_to_end(stack, f"it-term-{g}-{run}", topic) for g in "ab")


@pytest.fixture
def failure_targets(stack):
    sns, sqs, s3 = boto3.client("sns"), boto3.client("sqs"), boto3.client("s3")
    run = uuid.uuid4().hex[:6]
    topic_arn = sns.create_topic(Name=f"it-esm-failures-{run}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"it-esm-failures-{run}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    bucket = f"it-esm-failures-{run}"
    s3.create_bucket(Bucket=bucket)
    yield topic_arn, queue, bucket
    sns.delete_topic(TopicArn=topic_arn)
    sqs.delete_queue(QueueUrl=queue)
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


def test_failures_land_in_sns_and_s3_destinations_in_aws_shape(stack, raising_function, event_dir, failure_targets):
    topic_arn, queue, bucket = failure_targets
    topic, _ = new_topic(stack, partitions=1)
    metas = produce(stack, topic, flights(6, poison={4}))
    # WHEN two mappings (an SNS and an S3 destination) give up on the poison record after one retry
    for destination in (topic_arn, f"arn:aws:s3:::{bucket}"):
        cfg = config(stack, topic, None, raising_function, on_failure_destination=destination,
                     maximum_retry_attempts=1, bisect_batch_on_function_error=True)
        stats = Trigger(cfg).run(until_idle_s=3, duration=120)
        assert (stats.succeeded, stats.dead_lettered) == (5, 1)

    # THEN an SNS subscriber got AWS's on-failure record for Kafka, naming the record's offset
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
    doc = json.loads(message["Body"])
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] >= 2
    assert doc["responseContext"]["functionError"] == "Unhandled"
    assert doc["KafkaBatchInfo"]["recordInfo"]["offset"] == str(metas[4].offset)
    # AND the bucket holds one object under aws/lambda/<ESM-UUID>/<topic>-<partition>/..., with the record in it
    s3 = boto3.client("s3")
    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert obj["Key"].startswith(f"aws/lambda/{cfg.mapping_uuid}/{topic}-0/")
    stored = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    assert stored["payload"]["records"][f"{topic}-0"][0]["offset"] == metas[4].offset
