"""How fast a demo printer empties its queue: `make notifications` or `make alerts` on a pre-filled queue.

    python -m infra.bench.printer_rate --printer notifications --messages 20000 [-- printer args...]

Fills a queue of its own (real notification or alert bodies, 10 per SendMessageBatch from 8 threads),
starts the printer as a user would (`python -m ...`, its stdout to a file), waits until the queue holds
nothing (visible or in flight), stops the printer with Ctrl-C (SIGINT) and reads its totals line.
Prints messages/s, the printer's CPU per message and its totals; the queue is deleted at the end.
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
            timeout_s: float = 900) -> dict:
    clients = AwsClients()
    queue = f"printer-rate-{uuid.uuid4().hex[:8]}"
    url = clients.sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    try:
        bodies = notification_bodies(messages) if printer == "notifications" else alert_bodies(messages)
        bodies = [b[0] if isinstance(b, tuple) else b for b in bodies]
        filled_s = fill(clients.sqs, url, bodies)
        before = depth(clients.sqs, url)
        env = {**os.environ, QUEUE_VARIABLE[printer]: queue}
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "out"), Path(tmp, "err")
            with out.open("w") as stdout, err.open("w") as stderr:
                started = time.monotonic()
                child = subprocess.Popen([python, *COMMANDS[printer], *printer_args], cwd=cwd, env=env,
                                         stdout=stdout, stderr=stderr)
                proc = psutil.Process(child.pid)
                cpu = 0.0
                try:
                    while depth(clients.sqs, url) > 0 and time.monotonic() - started < timeout_s:
                        cpu = _cpu(proc) or cpu
                        time.sleep(0.25)
                    emptied = time.monotonic() - started
                    cpu = _cpu(proc) or cpu
                finally:
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
                "fill_s": round(filled_s, 1), "seconds_to_empty": round(emptied, 2),
                "messages_per_s": round(messages / emptied, 1), "left_in_queue": left,
                "printer_cpu_s": round(cpu, 2), "cpu_us_per_message": round(cpu / messages * 1e6, 1),
                "stdout_lines": lines, "last_line": tail[-1] if tail else ""}
    finally:
        clients.sqs.delete_queue(QueueUrl=url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bench.printer_rate", description=__doc__.splitlines()[0])
    parser.add_argument("--printer", choices=sorted(COMMANDS), default="notifications")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the printer")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="the checkout whose printer runs")
    parser.add_argument("printer_args", nargs="*", help="after --: the printer's own flags")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.printer, args.messages, args.printer_args, args.python, args.cwd)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
