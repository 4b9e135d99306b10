"""MiniStack, started with fixes for costs that grow with its own state (`make run` starts it this way).

MiniStack (pinned in pyproject) keeps each SQS queue as one Python list and each metric as a list of
points. Three of its hot paths walk the whole of that state on every request, so a backlog or a long
session makes every later request slower, and a queue that falls behind can never catch up (measured in
a soak at 1,000 positions/s: SQS receive + delete grew from 34 % to 55 % of MiniStack's time in one minute
while the demo subscriber's queue grew past 26,000):

* DeleteMessageBatch rebuilt the queue's list once per entry (10 passes per call). Here: the received
  messages are found from the head of the queue (where receiving takes them) and deleted in place.
* ReceiveMessage (standard queues) filled the field defaults of every message and listed every visible
  one to return the first ten. Here: it stops at the tenth, having filled those it looked at (every
  writer of a queue sets the two fields the queue's counters read).
* ReceiveMessage and GetQueueAttributes first walked the whole queue for messages past their retention
  period. Here: at most once a second per queue (retention is at least 60 s).
* Every CloudWatch request first walked every stored datapoint to drop those older than two weeks.
  Here: at most once a minute.

* Every SNS request's form body was parsed twice, once to route it and once by the SNS handler (17 % of
  MiniStack's time in the 1,000/s soak, PublishBatch bodies being ~330 fields). Here the handler reuses
  the routing parse of the same body, minus the blank values it does not keep.

And two bounds on what it keeps, which otherwise grows with every Lambda invocation (measured in a 60-minute
soak at 500 positions/s: +1.14 MB/min, ~7.7 KB per invocation, ~2 KB of it log events and ~3.3 KB the
function's and Lambda's datapoints):

* CloudWatch Logs streams are dropped once their last event is older than MINISTACK_LOGS_KEEP_S (or the
  group's own retention, if shorter). MiniStack enforces no retention, and writes one stream per invocation.
* Datapoints older than MINISTACK_METRICS_RAW_S are kept as one statistic set (SampleCount, Sum, Minimum,
  Maximum) per metric, unit and minute, as CloudWatch keeps 1-minute data once sub-minute data has expired.
  Sums, counts, averages and extremes over those minutes stay exact; a window that starts or ends inside
  such a minute counts the whole minute (the set is stamped with its first point's time), and percentiles
  there are only answered when the minute held one repeated value (MiniStack's rule for statistic sets).

Behaviour is otherwise MiniStack's: the same responses, receipt-handle checks and errors
(tests/unit/test_ministack_main.py runs them against the patched functions). Each fix checks that the
function it replaces is the one it was written for, so an upgrade of MiniStack that changes them fails at
start, naming the fix to revisit, instead of running a stale copy.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import sys
import time
import urllib.parse

# The source digests (sha256 of the source, first 16 hex digits) of the functions replaced, in the pinned release.
EXPECTED = {
    "sqs._act_delete_message_batch": "877517c32f0fe636",
    "sqs._collect_msgs": "308a6eb1b3d4c8ad",
    "sqs._expire_retained": "c0da3361632bea27",
    "cloudwatch._evict_old_metrics": "cf47bc1522ad839b",
    "cloudwatch._point_stats": "56fe58fc91f5bb2a",
    "lambda_svc._emit_lambda_logs": "111efbf06968bb20",
    "app._routing_params": "00e89d22c926fdb4",
    "sns.handle_request": "a6cb34ecce860f66",
}
EVICT_EVERY_S = 60.0
EXPIRE_EVERY_S = 1.0


class StalePatch(RuntimeError):
    pass


def _digest(fn) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


def _check(name: str, fn) -> None:
    if _digest(fn) != EXPECTED[name]:
        raise StalePatch(f"MiniStack's {name} changed since infra/stack/ministack_main.py was written "
                         f"(source digest {_digest(fn)}, expected {EXPECTED[name]}): check whether the fix is "
                         "still needed, then update or drop it")


def _at_most_every(every_s: float, clock, original, key=lambda *args: None):
    """``original``, run at most once per ``every_s`` of ``clock`` for each ``key(*args)``; skipped otherwise."""
    last: dict = {}

    def throttled(*args) -> None:
        now, k = clock(), key(*args)
        if k not in last or now - last[k] >= every_s:
            last[k] = now
            original(*args)

    return throttled


def patch_sqs(sqs, clock=time.monotonic) -> None:
    for name in ("_act_delete_message_batch", "_collect_msgs", "_expire_retained"):
        _check(f"sqs.{name}", getattr(sqs, name))

    def delete_message_batch(data: dict, qurl: str) -> dict:
        url = data.get("QueueUrl", qurl)
        q = sqs._get_q(url, "sqs:DeleteMessage")
        entries = data.get("Entries", [])
        sqs._validate_batch_entries(entries, "DeleteMessageBatchRequestEntry")
        wanted = {rh for e in entries if (rh := e.get("ReceiptHandle"))}
        deleted: set = set()
        if wanted:
            # Received messages are the first visible ones, near the head: stop once every handle is found.
            messages = q["messages"]
            found = []
            for i, m in enumerate(messages):
                rh = m["receipt_handle"]
                if rh is not None and rh in wanted and rh not in deleted:
                    found.append(i)   # as MiniStack: a FIFO dedup entry stays for its 5-minute window
                    deleted.add(rh)
                    if len(deleted) == len(wanted):
                        break
            for i in reversed(found):
                del messages[i]
        ok: list = []
        fail: list = []
        for e in entries:
            eid = e.get("Id", "")
            rh = e.get("ReceiptHandle", "")
            if rh in deleted:
                deleted.discard(rh)   # a second entry with the same handle finds nothing left, as before
                ok.append({"Id": eid})
            else:
                fail.append({"Id": eid, "Code": "ReceiptHandleIsInvalid",
                             "Message": "The input receipt handle is invalid.", "SenderFault": True})
        return {"Successful": ok, "Failed": fail}

    original_collect = sqs._collect_msgs

    def collect_msgs(q: dict, max_n: int, vis_timeout: int) -> list:
        if q["is_fifo"]:
            return original_collect(q, max_n, vis_timeout)
        now = time.time()
        result = []
        # Every writer of a queue sets visible_at and receive_count (all _refresh_counts reads); the other
        # fields are filled where a reader needs them: here, for the messages looked at.
        for m in q["messages"]:
            if "seq" not in m or "sys" not in m or "md5_body" not in m:
                sqs._ensure_msg_fields(m)
            if m["visible_at"] <= now:
                result.append(m)
                if len(result) >= max_n:
                    break
        for m in result:
            m["receipt_handle"] = sqs.new_uuid()
            m["visible_at"] = now + vis_timeout
            m["receive_count"] += 1
            if m.get("first_receive_at") is None:
                m["first_receive_at"] = now
        return result

    sqs._act_delete_message_batch = delete_message_batch
    sqs._HANDLERS["DeleteMessageBatch"] = delete_message_batch
    sqs._collect_msgs = collect_msgs
    sqs._expire_retained = _at_most_every(EXPIRE_EVERY_S, clock, sqs._expire_retained, key=id)   # per queue


def minute_sets(cloudwatch, cutoff: float) -> int:
    """Keep each metric's points older than ``cutoff`` (epoch s) as one statistic set per minute and unit;
    returns how many points were merged away."""
    merged = 0
    for key, pts in list(cloudwatch._metrics.items()):
        groups: dict = {}
        for p in pts:
            if p["Timestamp"] < cutoff:
                groups.setdefault((int(p["Timestamp"] // 60), p.get("Unit", "None")), []).append(p)
        if not any(len(g) > 1 for g in groups.values()):
            continue
        replaced: dict = {}   # id(point) -> its minute's set (first member) or None (merged into it)
        for (_, unit), members in groups.items():
            if len(members) < 2:
                continue
            stats = [s for s in map(cloudwatch._point_stats, members) if s[0] > 0]
            if not stats:
                continue
            count, total = sum(s[0] for s in stats), sum(s[1] for s in stats)
            first = min(members, key=lambda p: p["Timestamp"])
            replaced.update((id(p), None) for p in members)
            replaced[id(first)] = {
                "Timestamp": first["Timestamp"], "Unit": unit, "Dimensions": first.get("Dimensions", {}),
                "Value": total / count,
                "_stat": {"SampleCount": count, "Sum": total, "Minimum": min(s[2] for s in stats),
                          "Maximum": max(s[3] for s in stats)}}
            merged += len(members) - 1
        # In place: a writer may hold this list (cloudwatch._metric_bucket) and append to it.
        pts[:] = [kept for p in pts if (kept := replaced.get(id(p), p)) is not None]
    return merged


def patch_cloudwatch(cloudwatch, clock=time.monotonic, wall=time.time, raw_s: float = 600.0) -> None:
    for name in ("_evict_old_metrics", "_point_stats"):
        _check(f"cloudwatch.{name}", getattr(cloudwatch, name))
    evict = cloudwatch._evict_old_metrics

    def evict_and_merge() -> None:
        evict()
        minute_sets(cloudwatch, wall() - raw_s)

    cloudwatch._evict_old_metrics = _at_most_every(EVICT_EVERY_S, clock, evict_and_merge)


def drop_old_streams(logs, now_ms: int, keep_s: float) -> int:
    """Delete the log streams whose last event (or creation, if none) is older than ``keep_s``, or than their
    group's retention if shorter; returns how many."""
    dropped = 0
    for _, group in list(logs._log_groups.items()):
        days = group.get("retentionInDays")
        cutoff = now_ms - 1000 * min(keep_s, days * 86400 if days else keep_s)
        streams = group["streams"]
        old = [name for name, st in list(streams.items())
               if (st.get("lastEventTimestamp") or st.get("creationTime") or now_ms) < cutoff]
        for name in old:
            streams.pop(name, None)
        dropped += len(old)
    if dropped:   # PutLogEvents' Insights records (a Lambda's own log lines are not kept there)
        for ptr, record in list(logs._log_records.items()):
            if record.get("_timestamp_ms", now_ms) < now_ms - 1000 * keep_s:
                logs._log_records.pop(ptr, None)
    return dropped


def patch_logs(lambda_svc, logs, clock=time.monotonic, wall=time.time, keep_s: float = 900.0) -> None:
    _check("lambda_svc._emit_lambda_logs", lambda_svc._emit_lambda_logs)
    emit = lambda_svc._emit_lambda_logs
    expire = _at_most_every(EVICT_EVERY_S, clock, lambda: drop_old_streams(logs, int(wall() * 1000), keep_s))

    def emit_lambda_logs(*args, **kwargs) -> None:
        emit(*args, **kwargs)
        try:
            expire()
        except Exception:  # noqa: BLE001 - as MiniStack's: writing logs must never break an invocation
            logging.getLogger(__name__).warning("could not expire old log streams", exc_info=True)

    lambda_svc._emit_lambda_logs = emit_lambda_logs


def patch_form_parsing(app, sns) -> None:
    """Route a form-encoded request with one parse of its body and hand that parse to SNS's handler."""
    _check("app._routing_params", app._routing_params)
    _check("sns.handle_request", sns.handle_request)
    parse_qs = urllib.parse.parse_qs
    last: list = [None, None]   # the last body routed: (its text, parse_qs(text, keep_blank_values=True))

    def routing_params(method: str, path: str, headers: dict, body: bytes, query_params: dict) -> dict:
        if not body or not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return query_params
        text = body.decode("utf-8", errors="replace")
        body_params = parse_qs(text, keep_blank_values=True)
        last[:] = text, body_params
        if not body_params:
            return query_params
        return {**body_params, **query_params}

    def sns_parse_qs(qs, *args, **kwargs):
        # SNS parses without blank values: the same pairs, less those whose value is empty. Another request
        # routed in between (the event loop interleaves them) just means a parse of its own, as before.
        text, parsed = last
        if args or kwargs or parsed is None or qs != text:
            return parse_qs(qs, *args, **kwargs)
        out = {}
        for k, values in parsed.items():
            if kept := [v for v in values if v]:
                out[k] = kept
        return out

    app._routing_params = routing_params
    sns.parse_qs = sns_parse_qs


def apply() -> None:
    from ministack import app
    from ministack.services import cloudwatch, cloudwatch_logs, lambda_svc, sns, sqs

    from infra.stack.servers import StackConfig
    cfg = StackConfig.from_env()
    patch_sqs(sqs)
    patch_cloudwatch(cloudwatch, raw_s=cfg.ministack_metrics_raw_s)
    patch_logs(lambda_svc, cloudwatch_logs, keep_s=cfg.ministack_logs_keep_s)
    patch_form_parsing(app, sns)


def main() -> int:
    apply()
    from ministack.app import main as ministack_main
    sys.argv[0] = "ministack"
    return ministack_main()


if __name__ == "__main__":
    sys.exit(main())
