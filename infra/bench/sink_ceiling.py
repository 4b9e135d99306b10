"""Section 1, the sink ceiling: SNS PublishBatch straight to the endpoint, no pipeline in front.

Same kind of topic and subscriber as the end-to-end runs (a standard topic with one SQS queue,
raw delivery, no filter policy), the function's own notification bodies and message attributes,
10 entries per call as the function sends them, with the function's own SNS client, from 1 and 4
client threads: the ceiling the end-to-end rate is compared against. A run from 4 client processes
shows what MiniStack takes when the client's CPU is spread over processes (as the function's
workers spread it); it is reported, not used as the target's ceiling.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from flight_domain.flight_transform import evaluate  # (the function's own conversion)

from infra.bench.procstat import CpuSplit
from infra.bench.session import Session

ROOT = Path(__file__).resolve().parent.parent.parent
ENTRIES_PER_CALL = 10  # SNS PublishBatch's limit, and what the function sends


def notifications(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """(body, origin_country) of real notifications: synthetic states in the air, converted by the function's code."""
    from producer.synthetic import SyntheticFleet

    fleet = SyntheticFleet(2000, seed, time.time())
    out = []
    for state in fleet.tick(time.time()):
        notification, _ = evaluate(state)
        if notification is not None:
            out.append((json.dumps(notification, separators=(",", ":"), ensure_ascii=False),
                        notification["origin_country"]))
    return [out[i % len(out)] for i in range(count)]


def function_sns_client(topic_arn: str):
    """The SNS client the function itself publishes with (same configuration and request encoding)."""
    import flight_handler
    from flight_settings import FunctionSettings

    return flight_handler._client("sns", FunctionSettings(sns_topic_arn=topic_arn))


def publish(session: Session, topic_arn: str, bodies: list[tuple[str, str]], threads: int) -> tuple[float, int]:
    """Publish everything with `threads` threads; returns (seconds, failed entries)."""
    sns = function_sns_client(topic_arn)
    calls = [bodies[i:i + ENTRIES_PER_CALL] for i in range(0, len(bodies), ENTRIES_PER_CALL)]
    cursor = iter(range(len(calls)))
    lock = threading.Lock()
    failed = [0]

    def work() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            now_ms = str(int(time.time() * 1000))
            entries = [{"Id": str(i), "Message": body, "MessageAttributes": {
                "origin_country": {"DataType": "String", "StringValue": country},
                "kafka_timestamp_ms": {"DataType": "Number", "StringValue": now_ms}}}
                for i, (body, country) in enumerate(calls[index])]
            response = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            if response.get("Failed"):
                with lock:
                    failed[0] += len(response["Failed"])

    started = time.perf_counter()
    pool = [threading.Thread(target=work, name=f"bench-sink-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started, failed[0]


def publish_from_processes(session: Session, topic_arn: str, messages: int,
                           processes: int) -> tuple[float, int, float, CpuSplit]:
    """The same publishing from `processes` single-threaded client processes started together; returns
    (seconds from the first call to the last answer, failed entries, the clients' CPU seconds, the CPU
    split from the moment every client was ready)."""
    share = -(-messages // processes)
    children = []
    for i in range(processes):
        n = min(share, messages - i * share)
        children.append(subprocess.Popen(
            [sys.executable, "-m", "infra.bench.sink_ceiling", "--topic-arn", topic_arn, "--messages", str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=session.child_env()))
    try:
        for child in children:  # each has imported boto3 and built its client and messages
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a sink-ceiling client process failed to start")
        meter = session.meter()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = [json.loads(child.stdout.readline()) for child in children]
        cpu = meter.stop()
    finally:
        for child in children:
            child.stdin.close()
            child.wait(timeout=60)
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    cpu.seconds["sink clients"] = sum(r["cpu_s"] for r in reports)
    return seconds, sum(r["failed"] for r in reports), cpu.seconds["sink clients"], cpu


def run(session: Session, messages: int = 20_000, thread_counts: tuple[int, ...] = (1, 4),
        process_counts: tuple[int, ...] = (4,)) -> dict:
    bodies = notifications(messages)
    rows = []
    for threads in thread_counts:
        topic_arn = session.aws.topic(session.name(f"sink-{threads}t", "sns"))
        subscriber = session.aws.subscriber(topic_arn, session.name(f"sink-{threads}t", "queue"))
        session.say(f"sink ceiling: {messages:,} messages with PublishBatch from {threads} thread(s)")
        meter = session.meter()
        seconds, failed = publish(session, topic_arn, bodies, threads)
        cpu = meter.stop()
        cpu.seconds["sink clients"] = cpu.seconds.pop("bench harness", 0.0)  # the harness is the client here
        # SNS -> SQS is synchronous in MiniStack, so everything published is in the queue already;
        # wait briefly anyway in case an endpoint delivers asynchronously.
        deadline = time.monotonic() + 10
        delivered = session.aws.depth(subscriber.queue_url)
        while delivered < messages - failed and time.monotonic() < deadline:
            time.sleep(0.5)
            delivered = session.aws.depth(subscriber.queue_url)
        row = {"threads": threads, "messages": messages, "seconds": round(seconds, 2),
               "rate": round(messages / seconds, 1), "failed": failed, "delivered": delivered,
               "cpu": cpu.as_dict()}
        rows.append(row)
        session.say(f"  -> {row['rate']:,.0f} msg/s ({delivered:,} in the subscriber queue, {failed} failed; "
                    f"MiniStack at {cpu.share('MiniStack'):.2f} cores)")
        session.aws.purge_quietly(subscriber.queue_url)
    ceiling = max(rows, key=lambda r: r["rate"])
    # Informative, not the target's ceiling: with the client's own CPU spread over processes (as the
    # function's workers spread it), what MiniStack itself takes.
    for processes in process_counts:
        topic_arn = session.aws.topic(session.name(f"sink-{processes}p", "sns"))
        subscriber = session.aws.subscriber(topic_arn, session.name(f"sink-{processes}p", "queue"))
        session.say(f"sink ceiling: {messages:,} messages from {processes} client processes (1 thread each)")
        seconds, failed, _client_cpu, cpu = publish_from_processes(session, topic_arn, messages, processes)
        delivered = session.aws.depth(subscriber.queue_url)
        row = {"threads": 1, "processes": processes, "messages": messages, "seconds": round(seconds, 2),
               "rate": round(messages / seconds, 1), "failed": failed, "delivered": delivered, "cpu": cpu.as_dict()}
        rows.append(row)
        session.say(f"  -> {row['rate']:,.0f} msg/s ({delivered:,} in the subscriber queue, {failed} failed; "
                    f"MiniStack at {cpu.share('MiniStack'):.2f} cores)")
        session.aws.purge_quietly(subscriber.queue_url)
    from_processes = [r["rate"] for r in rows if r.get("processes")]
    return {"rows": rows, "ceiling": ceiling["rate"], "ceiling_threads": ceiling["threads"],
            "multi_process": max(from_processes, default=None)}


def _client_main(argv: list[str] | None = None) -> int:
    """One client process of publish_from_processes: build, say ready, wait for go, publish, report."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--topic-arn", required=True)
    parser.add_argument("--messages", type=int, required=True)
    args = parser.parse_args(argv)
    sns = function_sns_client(args.topic_arn)
    calls = []
    bodies = notifications(args.messages)
    for i in range(0, len(bodies), ENTRIES_PER_CALL):
        calls.append(bodies[i:i + ENTRIES_PER_CALL])
    print("ready", flush=True)
    sys.stdin.readline()
    started, cpu0, failed = time.time(), time.process_time(), 0
    for chunk in calls:
        now_ms = str(int(time.time() * 1000))
        response = sns.publish_batch(TopicArn=args.topic_arn, PublishBatchRequestEntries=[
            {"Id": str(i), "Message": body, "MessageAttributes": {
                "origin_country": {"DataType": "String", "StringValue": country},
                "kafka_timestamp_ms": {"DataType": "Number", "StringValue": now_ms}}}
            for i, (body, country) in enumerate(chunk)])
        failed += len(response.get("Failed") or [])
    print(json.dumps({"start": started, "end": time.time(), "failed": failed,
                      "cpu_s": time.process_time() - cpu0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_client_main())
