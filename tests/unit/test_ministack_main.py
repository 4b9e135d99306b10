"""infra/stack/ministack_main.py: MiniStack's replaced SQS and CloudWatch functions answer as the originals do.

Each test drives MiniStack's own SQS code in this process on one queue, then the same calls through the
original and the patched function on copies of that queue, and compares responses and what is left.
"""
from __future__ import annotations

import asyncio
import copy
import itertools
import time
import types
import urllib.parse

import pytest
from ministack import app
from ministack.services import cloudwatch, cloudwatch_logs, lambda_svc, sns, sqs

from infra.stack import ministack_main

_names = itertools.count()


@pytest.fixture
def patched():
    """Patched copies of sqs's functions on a stand-in module; the real module is left as it was."""
    saved = (sqs._act_delete_message_batch, sqs._collect_msgs, sqs._expire_retained,
             sqs._HANDLERS["DeleteMessageBatch"])
    now = [1000.0]
    ministack_main.patch_sqs(sqs, clock=lambda: now[0])
    fixed = types.SimpleNamespace(delete=sqs._act_delete_message_batch, collect=sqs._collect_msgs,
                                  expire=sqs._expire_retained, now=now)
    (sqs._act_delete_message_batch, sqs._collect_msgs, sqs._expire_retained,
     sqs._HANDLERS["DeleteMessageBatch"]) = saved
    return fixed


def _queue(n: int, fifo: bool = False) -> str:
    name = f"patch-test-{next(_names)}" + (".fifo" if fifo else "")
    attrs = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    url = sqs._act_create_queue({"QueueName": name, "Attributes": attrs}, "")["QueueUrl"]
    for i in range(n):
        body = {"QueueUrl": url, "MessageBody": f"m{i}"}
        if fifo:
            body["MessageGroupId"] = f"g{i % 3}"
        sqs._act_send_message(body, url)
    return url


def _receive(url: str, n: int) -> list[dict]:
    return asyncio.run(sqs._act_receive_message({"QueueUrl": url, "MaxNumberOfMessages": n,
                                                 "VisibilityTimeout": 30}, url)).get("Messages", [])


def _both(url: str, call):
    """`call(queue)` on two copies of the queue's state: (original's answer, patched's answer, the two states)."""
    q = sqs._get_q(url)
    start = copy.deepcopy(q["messages"])
    first = call("original")
    after_original = copy.deepcopy(q["messages"])
    q["messages"] = copy.deepcopy(start)
    second = call("patched")
    return first, second, after_original, q["messages"]


def test_delete_batch_matches_the_original_on_good_bad_and_repeated_handles(patched):
    url = _queue(30)
    handles = [m["ReceiptHandle"] for m in _receive(url, 10)]
    entries = ([{"Id": f"e{i}", "ReceiptHandle": h} for i, h in enumerate(handles[:6])]
               + [{"Id": "bad", "ReceiptHandle": "not-a-handle"},
                  {"Id": "again", "ReceiptHandle": handles[0]}])   # the same handle twice: the second fails
    request = {"QueueUrl": url, "Entries": entries}
    original = sqs._act_delete_message_batch
    a, b, left_a, left_b = _both(url, lambda which: (original if which == "original" else patched.delete)(
        copy.deepcopy(request), url))
    assert a == b
    assert [e["Id"] for e in b["Successful"]] == [f"e{i}" for i in range(6)]
    assert [e["Id"] for e in b["Failed"]] == ["bad", "again"]
    assert [m["id"] for m in left_a] == [m["id"] for m in left_b] and len(left_b) == 24


def test_delete_batch_never_removes_a_message_not_yet_received(patched):
    url = _queue(5)
    # Never-received messages have no receipt handle: an empty handle must not match them.
    result = patched.delete({"QueueUrl": url, "Entries": [{"Id": "x", "ReceiptHandle": ""}]}, url)
    assert result["Successful"] == [] and result["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    assert len(sqs._get_q(url)["messages"]) == 5


def test_delete_batch_keeps_minstacks_validation(patched):
    url = _queue(1)
    with pytest.raises(sqs._Err):
        patched.delete({"QueueUrl": url, "Entries": []}, url)


@pytest.mark.parametrize("max_n", [1, 4, 10])
def test_receive_returns_the_same_messages_in_the_same_order(patched, max_n):
    url = _queue(25)
    _receive(url, 3)   # three in flight at the head of the queue: skipped by both
    original = sqs._collect_msgs
    a, b, left_a, left_b = _both(url, lambda which: [m["id"] for m in (
        original if which == "original" else patched.collect)(sqs._get_q(url), max_n, 30)])
    assert a == b and len(b) == max_n
    assert [(m["id"], m["receive_count"]) for m in left_a] == [(m["id"], m["receive_count"]) for m in left_b]


def test_receive_answers_for_messages_written_without_the_optional_fields(patched):
    url = _queue(0)
    q = sqs._get_q(url)
    for i in range(3):   # as MiniStack's S3 notifications and Lambda DLQ writes start them
        q["messages"].append({"id": f"raw{i}", "body": f"b{i}", "md5": "x", "receipt_handle": None,
                              "sent_at": time.time(), "visible_at": 0, "receive_count": 0})
    (got,) = patched.collect(q, 1, 30)
    assert got["id"] == "raw0" and got["md5_body"] == "x" and got["sys"]["SenderId"]
    sqs._refresh_counts(q)   # the queue's counters read only what every writer sets
    assert q["attributes"]["ApproximateNumberOfMessages"] == "2"
    assert q["attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_fifo_queues_keep_ministacks_own_receive(patched):
    url = _queue(6, fifo=True)
    a, b, _, _ = _both(url, lambda which: [m["id"] for m in (
        sqs._collect_msgs if which == "original" else patched.collect)(sqs._get_q(url), 10, 30)])
    assert a == b and a


def test_retention_is_applied_at_most_once_a_second_per_queue(patched):
    url, other = _queue(2), _queue(1)
    q, q2 = sqs._get_q(url), sqs._get_q(other)
    for queue in (q, q2):
        queue["attributes"]["MessageRetentionPeriod"] = "60"
        for m in queue["messages"]:
            m["sent_at"] -= 61   # past retention
    patched.expire(q)
    assert q["messages"] == []
    sqs._act_send_message({"QueueUrl": url, "MessageBody": "late"}, url)
    q["messages"][0]["sent_at"] -= 61
    patched.now[0] += 0.5
    patched.expire(q)
    assert len(q["messages"]) == 1      # checked half a second ago: not yet
    patched.expire(q2)
    assert q2["messages"] == []         # each queue has its own second
    patched.now[0] += 0.5
    patched.expire(q)
    assert q["messages"] == []


def test_cloudwatch_eviction_runs_at_most_once_a_minute(monkeypatch):
    calls = []
    now = [0.0]
    module = types.SimpleNamespace(_evict_old_metrics=lambda: calls.append(now[0]), _metrics={},
                                   _point_stats=cloudwatch._point_stats)
    monkeypatch.setattr(ministack_main, "_check", lambda name, fn: None)
    ministack_main.patch_cloudwatch(module, clock=lambda: now[0])
    for t in (0.0, 10.0, 59.9, 60.0, 61.0, 200.0):
        now[0] = t
        module._evict_old_metrics()
    assert calls == [0.0, 60.0, 200.0]


def _stats_between(key, start, end):
    return cloudwatch._calc_stats([p for p in cloudwatch._metrics[key] if start <= p["Timestamp"] < end])


def test_old_datapoints_become_one_statistic_set_per_minute_with_the_same_statistics():
    name = f"patch-test-{next(_names)}"
    key = ("PatchTest", name, cloudwatch._dims_key({"FunctionName": "f"}))
    base = 1_800_000_000.0   # a minute boundary
    dims = {"FunctionName": "f"}
    for i in range(150):      # three minutes of single values, 1.2 s apart
        cloudwatch._store_datum("PatchTest", name, dims, base + 1.2 * i + 0.1, "Count", float(i % 7), None, None, None)
    cloudwatch._store_datum("PatchTest", name, dims, base + 30, "Count", None, [2.0, 9.0], [3.0, 1.0], None)
    cloudwatch._store_datum("PatchTest", name, dims, base + 31, "Count", None, None, None,
                            {"SampleCount": 4.0, "Sum": 20.0, "Minimum": 1.0, "Maximum": 11.0})
    cloudwatch._store_datum("PatchTest", name, dims, base + 32, "Seconds", 5.0, None, None, None)
    for i in range(10):       # recent: left as they are
        cloudwatch._store_datum("PatchTest", name, dims, base + 200 + i, "Count", 1.0, None, None, None)
    minutes = [(base + 60 * m, base + 60 * (m + 1)) for m in range(4)]
    before = [_stats_between(key, *w) for w in minutes] + [_stats_between(key, base, base + 240)]
    points = len(cloudwatch._metrics[key])

    merged = ministack_main.minute_sets(cloudwatch, cutoff=base + 180)

    after = [_stats_between(key, *w) for w in minutes] + [_stats_between(key, base, base + 240)]
    assert len(after) == len(before) and all(a == pytest.approx(b) for a, b in zip(after, before))
    assert before[0]["SampleCount"] == 50 + 4 + 4 + 1   # the Values' counts and the set's SampleCount count
    # minute 0: Count points and Seconds apart; minutes 1, 2: one set each; minute 3: ten raw points
    assert len(cloudwatch._metrics[key]) == 4 + 10 == points - merged
    assert ministack_main.minute_sets(cloudwatch, cutoff=base + 180) == 0   # nothing left to merge


def test_a_minute_of_one_repeated_value_still_answers_percentiles():
    name = f"patch-test-{next(_names)}"
    key = ("PatchTest", name, cloudwatch._dims_key({}))
    for i in range(20):
        cloudwatch._store_datum("PatchTest", name, {}, 1_800_000_000.0 + i, "Count", 1.0, None, None, None)
    before = cloudwatch._percentile_samples(cloudwatch._metrics[key])
    ministack_main.minute_sets(cloudwatch, cutoff=1_800_000_100.0)
    assert len(cloudwatch._metrics[key]) == 1
    assert cloudwatch._percentile_samples(cloudwatch._metrics[key]) == [(1.0, 20.0)]
    assert sum(w for _, w in before) == 20


def _group(streams: dict, retention_days=None) -> dict:
    return {"arn": "arn", "creationTime": 0, "retentionInDays": retention_days, "tags": {},
            "subscriptionFilters": {}, "streams": streams}


def _stream(last_ms, created_ms=0) -> dict:
    return {"events": [{"timestamp": last_ms or created_ms, "message": "m"}], "uploadSequenceToken": "1",
            "creationTime": created_ms, "firstEventTimestamp": last_ms, "lastEventTimestamp": last_ms,
            "lastIngestionTime": last_ms}


def test_log_streams_older_than_the_bound_or_their_groups_retention_are_dropped():
    now_ms = 10 * 86400 * 1000
    a, b = f"/aws/lambda/patch-test-{next(_names)}", f"/patch-test-{next(_names)}"
    cloudwatch_logs._log_groups[a] = _group({
        "old": _stream(now_ms - 901_000), "recent": _stream(now_ms - 899_000),
        "empty-old": _stream(None, created_ms=now_ms - 901_000), "empty-new": _stream(None, created_ms=now_ms)})
    cloudwatch_logs._log_groups[b] = _group({"day-and-a-bit": _stream(now_ms - 86_500_000),
                                             "hour": _stream(now_ms - 3_600_000)}, retention_days=1)
    try:
        assert ministack_main.drop_old_streams(cloudwatch_logs, now_ms, keep_s=900) >= 3
        assert sorted(cloudwatch_logs._log_groups[a]["streams"]) == ["empty-new", "recent"]
        assert sorted(cloudwatch_logs._log_groups[b]["streams"]) == []   # both past 900 s
        cloudwatch_logs._log_groups[b]["streams"].update({"day-and-a-bit": _stream(now_ms - 86_500_000),
                                                         "hour": _stream(now_ms - 3_600_000)})
        ministack_main.drop_old_streams(cloudwatch_logs, now_ms, keep_s=7 * 86400)   # the group's day is shorter
        assert sorted(cloudwatch_logs._log_groups[b]["streams"]) == ["hour"]
    finally:
        del cloudwatch_logs._log_groups[a], cloudwatch_logs._log_groups[b]


def test_lambda_logs_expire_at_most_once_a_minute_after_each_write(monkeypatch):
    emitted, now = [], [0.0]
    lambda_stand_in = types.SimpleNamespace(_emit_lambda_logs=lambda *a, **k: emitted.append(a))
    name = f"/aws/lambda/patch-test-{next(_names)}"
    monkeypatch.setattr(ministack_main, "_check", lambda name, fn: None)
    ministack_main.patch_logs(lambda_stand_in, cloudwatch_logs, clock=lambda: now[0],
                              wall=lambda: 1_000_000.0 + now[0], keep_s=60)
    cloudwatch_logs._log_groups[name] = _group({})
    try:
        for t in (0.0, 30.0, 59.0, 61.0):
            now[0] = t
            cloudwatch_logs._log_groups[name]["streams"][f"s{t}"] = _stream(int((1_000_000.0 + t) * 1000))
            lambda_stand_in._emit_lambda_logs("f", t)
        cloudwatch_logs._log_groups[name]["streams"]["ancient"] = _stream(1)
        now[0] = 100.0
        lambda_stand_in._emit_lambda_logs("f", 100.0)     # within a minute of the last pass: kept for now
        assert "ancient" in cloudwatch_logs._log_groups[name]["streams"]
        now[0] = 121.0                                    # a minute after the pass at 61: streams before 61 go
        lambda_stand_in._emit_lambda_logs("f", 121.0)
        assert sorted(cloudwatch_logs._log_groups[name]["streams"]) == ["s61.0"]
        assert len(emitted) == 6
    finally:
        del cloudwatch_logs._log_groups[name]


_FORMS = ["Action=PublishBatch&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A0%3At&PublishBatchRequestEntries.member.1.Id=0"
          "&PublishBatchRequestEntries.member.1.Message=%7B%22a%22%3A+1%7D&Subject=&Version=2010-03-31",
          "Action=Publish&k&k=1&k=&k=2&blank=&x=%E2%9C%88&empty",
          "", "=&=x&a=b&a=&a=c"]


@pytest.mark.parametrize("form", _FORMS)
def test_sns_gets_the_same_parse_of_a_routed_body(monkeypatch, form):
    stand_in_app = types.SimpleNamespace(_routing_params=app._routing_params)
    stand_in_sns = types.SimpleNamespace(handle_request=sns.handle_request)
    ministack_main.patch_form_parsing(stand_in_app, stand_in_sns)
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    query = {"Action": ["FromQuery"]}
    body = form.encode()
    assert stand_in_app._routing_params("POST", "/", headers, body, query) == \
        app._routing_params("POST", "/", headers, body, query)
    assert stand_in_sns.parse_qs(body.decode("utf-8", errors="replace")) == urllib.parse.parse_qs(form)
    # A body that was not the last one routed is parsed on its own.
    assert stand_in_sns.parse_qs("Action=Other&x=") == {"Action": ["Other"]}
    other = {"content-type": "application/json"}
    assert stand_in_app._routing_params("POST", "/", other, b"{}", query) is query


def test_a_changed_ministack_function_stops_the_start():
    def _act_delete_message_batch(data, qurl):   # not the pinned release's source
        return {}
    stand_in = types.SimpleNamespace(_act_delete_message_batch=_act_delete_message_batch,
                                     _collect_msgs=sqs._collect_msgs, _expire_retained=sqs._expire_retained,
                                     _HANDLERS={})
    with pytest.raises(ministack_main.StalePatch, match="_act_delete_message_batch changed"):
        ministack_main.patch_sqs(stand_in)


def test_the_pinned_release_matches_every_fix():
    for name in ministack_main.EXPECTED:
        module, function = name.split(".")
        ministack_main._check(name, getattr({"sqs": sqs, "cloudwatch": cloudwatch, "lambda_svc": lambda_svc, "app": app, "sns": sns}[module],
                                                 function))
