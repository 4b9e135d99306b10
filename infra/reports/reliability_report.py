#!/usr/bin/env python3
"""Writes the results table of docs/RELIABILITY.md from the fault tests' result files.

    python -m infra.reports.reliability_report [--results DIR] [--doc docs/RELIABILITY.md] [--check]

The fault tests (tests/integration/test_faults.py) leave one JSON file per fault in
.state/reliability/ (RELIABILITY_RESULTS_DIR overrides) and append every run to history.jsonl there.
This script replaces what lies between the two `<!-- results -->` markers of the document with a
table of the latest run of each fault; everything else in the document is left as written.
--check exits 1 when the document's table differs from what the results would produce.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = Path(os.environ.get("RELIABILITY_RESULTS_DIR") or ROOT / ".state" / "reliability")
DEFAULT_DOC = ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# The order a reader meets the faults in; anything else found is listed after them.
ORDER = ("trigger-sigkill", "broker-restart-sigterm", "broker-restart-sigkill", "endpoint-paused",
         "endpoint-stopped", "poison-records", "opensky-misbehaving")
COLUMNS = ("Fault", "Produced", "In Kafka", "Expected at SNS", "Delivered", "Missing", "Duplicates",
           "Dead-lettered", "Result", "Runs passed", "Notes")


def load_results(results: Path) -> tuple[list[dict], dict[str, list[bool]]]:
    latest = {}
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "fault" in doc:
            latest[doc["fault"]] = doc
    history: dict[str, list[bool]] = {}
    history_file = results / "history.jsonl"
    if history_file.exists():
        for line in history_file.read_text().splitlines():
            if line.strip():
                run = json.loads(line)
                history.setdefault(run["fault"], []).append(bool(run["passed"]))
    ordered = [latest[f] for f in ORDER if f in latest] + [latest[f] for f in sorted(latest) if f not in ORDER]
    return ordered, history


def _n(value) -> str:
    return "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _notes(r: dict) -> str:
    d = r.get("details") or {}
    parts = []
    if "kills" in d:
        back = ", ".join(f"{s:g}" for s in d.get("restart_to_progress_s", []))
        parts.append(f"{d['kills']} × SIGKILL, back to work in {back} s")
    if "downtime_s" in d:
        parts.append(f"broker down {d['downtime_s']:g} s")
    if "endpoint_errors" in d:
        parts.append(f"{d['endpoint_errors']} failed invokes retried")
    if "injected" in d:
        parts.append(f"{d['injected']} poison records injected, {d.get('trigger_retries', 0)} retries")
    if "polls" in d:
        parts.append(f"{r.get('expected')} valid new states expected in Kafka; "
                     f"{d['polls']} requests, {d['token_requests']} tokens, {d['rejected_rows']} bad rows refused, "
                     f"waited {d['waited_after_429_s']:g} s after 429, garbage published {r.get('garbage_published')}, "
                     f"secret/token in logs: {'yes' if d.get('secret_or_token_in_logs') else 'no'}")
    if d.get("producer_failed"):
        parts.append(f"{d['producer_failed']} producer delivery failures")
    return "; ".join(parts)


def _cell(text: str) -> str:
    """One line, no stray backslash, pipes escaped: whatever a title holds, the row keeps its columns."""
    return " ".join(text.split()).replace("\\", "").replace("|", "\\|")


def render_table(results: list[dict], history: dict[str, list[bool]]) -> str:
    if not results:
        return ("_No results yet: run `make test` (or `pytest -m slow tests/integration/test_faults.py`), "
                "then `python -m infra.reports.reliability_report`._")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        runs = history.get(r["fault"], [])
        row = [
            f"**{r['fault']}**: {r.get('title', '')}",
            _n(r.get("produced")),
            _n(r.get("in_kafka")),
            _n(r.get("in_air")),
            _n(r.get("delivered")),
            _n(r.get("missing")),
            _n(r.get("duplicates")),
            _n(r.get("dead_lettered")),
            "pass" if r.get("passed") else "**FAIL**",
            f"{sum(runs)}/{len(runs)}" if runs else "—",
            _notes(r),
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    latest = max(r.get("finished_at", "") for r in results)
    lines += ["", f"Latest run finished {latest}. \"Expected at SNS\" is the independent recount (the run's Kafka "
                  "topic read back through the function's own filter); \"Duplicates\" are notifications delivered "
                  "more than once (at-least-once delivery); \"Runs passed\" counts every recorded run of that "
                  "fault on this machine."]
    return "\n".join(lines)


def update_document(text: str, table: str) -> str:
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise ValueError(f"the document has no {START} ... {END} section to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"result files (default {DEFAULT_RESULTS})")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help=f"document to update (default {DEFAULT_DOC})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is not up to date")
    args = parser.parse_args(argv)
    results, history = load_results(args.results)
    try:
        current = args.doc.read_text()
        updated = update_document(current, render_table(results, history))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != current:
            print(f"{args.doc} is not up to date with {args.results}; run make reliability",
                  file=sys.stderr)
            return 1
        return 0
    args.doc.write_text(updated)
    failed = [r["fault"] for r in results if not r.get("passed")]
    print(f"{args.doc}: {len(results)} fault(s) from {args.results}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
