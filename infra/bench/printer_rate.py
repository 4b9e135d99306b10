"""How fast a demo printer empties its queue: `make notifications` or `make alerts` on a pre-filled queue.

    python -m infra.bench.printer_rate --printer notifications --messages 20000 [-- printer args...]
    python -m infra.bench.printer_rate --rate 800 --seconds 60     # a steady feed instead of a backlog

Fills a queue of its own (real notification or alert bodies, 10 per SendMessageBatch from 8 threads),
starts the printer as a user would (`python -m ...`, its stdout to a file), waits until the queue holds
nothing (visible or in flight), stops the printer with Ctrl-C (SIGINT) and reads its totals line.
With --rate the queue starts empty and is fed R messages/s for S seconds while the printer runs (the
deepest the queue got says whether it kept up). Prints messages/s, the CPU per message of the printer
and of MiniStack (from $STACK_STATE_DIR/ministack.pid when there is one) and the printer's totals; the
queue is deleted at the end. MiniStack's SQS scans the whole queue for every receive and every deleted
entry, so a backlog costs it CPU in proportion to its depth: a printer that keeps up keeps it cheap.
Not a section of `make bench`: a tool for the printers' own before/after (issue 24). `--python` and
`--cwd` run another checkout's printer (e.g. the previous commit's) against the same endpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from infra.bench.sink_ceiling import notifications as notification_bodies
from infra.deploy.aws_resources import AwsClients

ROOT = Path(__file__).resolve().parent.parent.parent

COMMANDS = {"notifications": ["-m", "infra.demo.observe", "notifications"],
            "alerts": ["-m", "infra.deploy.alerts_resources", "alerts"]}
QUEUE_VARIABLE = {"notifications": "NOTIFY_QUEUE_NAME", "alerts": "ALERTS_QUEUE_NAME"}


def alert_bodies(count: int) -> list[str]:
    kinds = ["GEOFENCE_ENTER", "GEOFENCE_EXIT", "EMERGENCY", "WATCHLIST"]
    return [json.dumps({"alert_id": f"{i:08x}", "alert_type": kinds[i % 4], "icao24": f"{i % 9000 + 1000:06x}",
                        "callsign": "DLH9LF", "origin_country": "Germany", "time_position": "2026-12-07T02:00:00Z",
                        "latitude": 50.1, "longitude": 8.6, "altitude_feet": 31000, "geofence": "Frankfurt TMA",
                        "squawk": "7700", "emergency": "general"}, separators=(",", ":")) for i in range(count)]


def fill(sqs, url: str, bodies: list[str], threads: int = 8) -> float:
    started = time.monotonic()

    def send(chunk: list[str]) -> None:
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        while entries:
            failed = {f["Id"] for f in sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, [bodies[i:i + 10] for i in range(0, len(bodies), 10)]))
    return time.monotonic() - started


def feed(sqs, url: str, bodies: list[str], rate: float, stop: threading.Event) -> int:
    """Send `bodies` at `rate` a second (10 per call, on a 0.1 s clock); returns how many were sent."""
    started, sent, step = time.monotonic(), 0, max(10, int(rate / 10))
    while sent < len(bodies) and not stop.is_set():
        due = started + sent / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        fill(sqs, url, bodies[sent:sent + step], threads=4)
        sent += len(bodies[sent:sent + step])
    return sent


def ministack_process() -> psutil.Process | None:
    pid_file = Path(os.environ.get("STACK_STATE_DIR", ROOT / ".state")) / "ministack.pid"
    try:
        return psutil.Process(int(pid_file.read_text().strip()))
    except (OSError, ValueError, psutil.Error):
        return None


def depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def measure(printer: str, messages: int, printer_args: list[str], python: str, cwd: Path,
            rate: float | None = None, timeout_s: float = 900, drain_s: float = 120) -> dict:
    clients = AwsClients()
    queue = f"printer-rate-{uuid.uuid4().hex[:8]}"
    url = clients.sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    ministack = ministack_process()
    try:
        bodies = notification_bodies(messages) if printer == "notifications" else alert_bodies(messages)
        bodies = [b[0] if isinstance(b, tuple) else b for b in bodies]
        filled_s = fill(clients.sqs, url, bodies) if rate is None else None
        before = depth(clients.sqs, url)
        env = {**os.environ, QUEUE_VARIABLE[printer]: queue}
        deepest, stop, feeder = 0, threading.Event(), None
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "out"), Path(tmp, "err")
            with out.open("w") as stdout, err.open("w") as stderr:
                started = time.monotonic()
                ministack_cpu = _cpu(ministack) if ministack else None
                child = subprocess.Popen([python, *COMMANDS[printer], *printer_args], cwd=cwd, env=env,
                                         stdout=stdout, stderr=stderr)
                proc = psutil.Process(child.pid)
                if rate is not None:
                    sent: list[int] = []
                    feeder = threading.Thread(target=lambda: sent.append(feed(clients.sqs, url, bodies, rate, stop)))
                    feeder.start()
                cpu, fed_at = 0.0, None
                try:
                    while time.monotonic() - started < timeout_s:
                        now_depth = depth(clients.sqs, url)
                        deepest = max(deepest, now_depth)
                        cpu = _cpu(proc) or cpu
                        if feeder is not None and not feeder.is_alive():
                            if fed_at is None:
                                fed_at = time.monotonic()
                            if time.monotonic() - fed_at > drain_s:
                                break   # fell behind: what is left says by how much
                        if now_depth == 0 and (feeder is None or not feeder.is_alive()):
                            break
                        time.sleep(0.25)
                    emptied = time.monotonic() - started
                    cpu = _cpu(proc) or cpu
                    if ministack_cpu is not None:
                        ministack_cpu = _cpu(ministack) - ministack_cpu
                finally:
                    stop.set()
                    if feeder is not None:
                        feeder.join()
                    child.send_signal(signal.SIGINT)
                    try:
                        child.wait(60)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
            lines = sum(1 for _ in out.open())
            tail = err.read_text().strip().splitlines()
        left = depth(clients.sqs, url)
        return {"printer": printer, "args": printer_args, "messages": messages, "in_queue_before": before,
                "seconds_after_feed": round(emptied - (fed_at - started), 1) if fed_at else None,
                "fill_s": round(filled_s, 1) if filled_s is not None else None, "offered_per_s": rate,
                "seconds_to_empty": round(emptied, 2), "messages_per_s": round(messages / emptied, 1),
                "deepest_queue": deepest, "left_in_queue": left,
                "printer_cpu_s": round(cpu, 2), "printer_cpu_us_per_message": round(cpu / messages * 1e6, 1),
                "ministack_cpu_us_per_message": round(ministack_cpu / messages * 1e6, 1) if ministack_cpu else None,
                "load_average": os.getloadavg(), "stdout_lines": lines, "last_line": tail[-1] if tail else ""}
    finally:
        clients.sqs.delete_queue(QueueUrl=url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bench.printer_rate", description=__doc__.splitlines()[0])
    parser.add_argument("--printer", choices=sorted(COMMANDS), default="notifications")
    parser.add_argument("--messages", type=int, default=20_000, help="messages (with --rate: rate x seconds)")
    parser.add_argument("--rate", type=float, default=None, help="feed R messages/s while the printer runs")
    parser.add_argument("--seconds", type=float, default=None, help="with --rate: how long to feed")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the printer")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="the checkout whose printer runs")
    parser.add_argument("printer_args", nargs="*", help="after --: the printer's own flags")
    args = parser.parse_args(argv)
    messages = int(args.rate * args.seconds) if args.rate and args.seconds else args.messages
    print(json.dumps(measure(args.printer, messages, args.printer_args, args.python, args.cwd, args.rate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
