"""docs/SOAK.md and its plots (docs/soak/*.png) from one soak's results (the JSON run.py returns)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from infra.soak import gates
from infra.stack.servers import StackConfig

PLOTS = ("lag", "throughput", "memory")


def _series(samples: list[dict], key: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        for name, value in s[key].items():
            out.setdefault(name, []).append((s["t"], value))
    return out


def _rates(counter: list[tuple[float, float]], span_s: float = 60.0) -> list[tuple[float, float]]:
    """Records/s over the preceding `span_s` at each sample (smooths the producer's whole-fleet ticks)."""
    out = []
    for i, (t, v) in enumerate(counter):
        j = i
        while j > 0 and t - counter[j - 1][0] <= span_s:
            j -= 1
        if j < i:
            t0, v0 = counter[j]
            out.append((t, (v - v0) / (t - t0)))
    return out


def plot(result: dict, out_dir: Path) -> dict[str, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    samples = result["samples"]
    warm_min = result["warmup_s"] / 60
    lag, committed, memory = _series(samples, "lag"), _series(samples, "committed"), _series(samples, "memory_mb")
    produced = [(s["t"], s["produced"]) for s in samples]
    paths = {}

    def figure(name: str, title: str, ylabel: str, lines: dict[str, list[tuple[float, float]]]) -> None:
        fig, ax = plt.subplots(figsize=(9, 4.2), dpi=100)
        for label, points in lines.items():
            if points:
                ax.plot([t / 60 for t, _ in points], [v for _, v in points], label=label, linewidth=1.4)
        ax.axvspan(0, warm_min, color="0.9", label="warm-up")
        ax.set_xlabel("minutes")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        # Stable bytes for unchanged data: no creation date or software version in the PNG.
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        paths[name] = path

    figure("lag", "Consumer-group lag (records not yet handled)", "records", lag)
    figure("throughput", "Records/s in (produced) and out (committed per group), 60 s average", "records/s",
           {"in (produced)": _rates(produced), **{f"out {g}": _rates(c) for g, c in committed.items()}})
    figure("memory", "Resident memory per process", "MB", memory)
    return paths


def _minute_rows(samples: list[dict]) -> list[dict]:
    """The sample at (or just after) each whole minute."""
    rows, next_minute = [], 1
    for s in samples:
        if s["t"] >= next_minute * 60 - 5:
            rows.append(s)
            next_minute = int(s["t"] // 60) + 1 if s["t"] >= next_minute * 60 else next_minute + 1
    return rows


def _input_rate(result: dict) -> int:
    """Records/s into the topic from the end of the warm-up to the last sample: the rate every gate was judged
    at. (Produced / minutes reads a whole-fleet producer low: its last snapshot's interval is cut by the stop,
    e.g. 359 snapshots of 10,000 in 60 minutes = 997/s for a steady 1,000/s.)"""
    produced = [(s["t"], s["produced"]) for s in result.get("samples", [])]
    rate = gates.rate_between(produced, result.get("warmup_s", 0), produced[-1][0]) if produced else None
    if rate is not None:
        return round(rate)
    rec = result["reconciliation"]
    return round(rec["produced"] / (result["minutes"] * 60)) if result["minutes"] else 0


def summary(result: dict) -> dict:
    """The run in a few fields, for other reports (docs/BENCHMARKS.md states the session's sustained rate)."""
    rec = result["reconciliation"]
    return {
        "passed": result["passed"], "minutes": result["minutes"], "started_at": result["started_at"],
        "command": result.get("command", "make soak"),
        "positions_per_s": _input_rate(result),
        "produced": rec["produced"], "reconciled": rec["reconciled"],
        "failed": [f"{g['name']}: {g['measured']}" for g in result["gates"] if not g["ok"]]
        + [f"{c['check']}: {c['detail']}" for c in rec["checks"] if not c["ok"]],
    }


def write(result: dict, report_path: Path, plots_dir: Path | None, command: str) -> None:
    """docs/SOAK.md, its plots and summary.json (beside the plots)."""
    plots_dir = plots_dir or report_path.parent / "soak"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    plots = plot(result, plots_dir)
    report_path.write_text(render(result, plots, report_path, command))
    (plots_dir / "summary.json").write_text(json.dumps(summary(result), indent=1) + "\n")


def render(result: dict, plots: dict[str, Path], report_path: Path, command: str) -> str:
    rel = {name: os.path.relpath(path, report_path.parent) for name, path in plots.items()}
    m, rec = result["machine"], result["reconciliation"]
    verdict = "PASSED" if result["passed"] else "FAILED"
    peak_load = max([result["load_before"][0], result["load_after"][0],
                     *(s.get("load1", 0.0) for s in result["samples"])])
    share = machine_share(result)
    lines = [
        "# Soak: the typical session for hours",
        "",
        "Written by `make soak` (`python -m infra.soak`) at the end of its latest run; do not edit by hand.",
        "",
        f"* **{verdict}**: {result['minutes']:g} minutes from {result['started_at']}, a sample every "
        f"{result['interval_s']:g} s, warm-up {result['warmup_s'] / 60:g} min (5 min, or the first fifth of "
        "a shorter run)",
        f"* command: `{command}`",
        f"* machine: {m.get('cores')} cores, {m.get('memory_gib', 0):.1f} GiB RAM, {m.get('cpu_model', '')}; load average "
        f"before {result['load_before'][0]:.2f}, after {result['load_after'][0]:.2f}",
        "* versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()),
        *([f"* **measured with other load on the machine** (1-minute load average up to {peak_load:.1f} on "
           f"{m.get('cores')} cores, the session's own included): rates and slopes are not those of a quiet machine"]
          if peak_load > 1.5 * (m.get("cores") or 1) and share is None else []),
        *_machine_line(share),
        *_maintenance_line(result),
        *_retention_line(result),
        "* session (each part is what its `make` target runs, with the Makefile's and the components' defaults):",
    ]
    lines += [f"  * {p['name']}: `{p['command']}`" for p in result["parts"]]
    lines += ["", "## Gates", "", "| gate | measured | passes when | ok |", "|---|---|---|---|"]
    for g in result["gates"]:
        lines.append(f"| {g['name']} | {g['measured']} | {g['limit']} | {'yes' if g['ok'] else '**no**: ' + g['detail']} |")
    lines += ["", "## Reconciliation (as `make demo` does it)", "", "| check | ok | detail |", "|---|---|---|"]
    for c in rec["checks"]:
        lines.append(f"| {c['check']} | {'yes' if c['ok'] else '**no**'} | {c['detail']} |")
    lines += ["", f"Produced {rec['produced']:,}; in the air by recount {rec['in_air_by_recount']:,}; published to SNS "
              f"{rec['function_metrics']['Published']:,}; received by the demo subscriber "
              f"{rec['received_by_subscriber'] if rec['received_by_subscriber'] is not None else '-'}; "
              f"dead-lettered {rec['dead_lettered']:,}; re-invoked (at-least-once) {rec['duplicates_invoked']:,}."
              + _tracker_sentence(rec.get("tracker")) + _lake_sentence(rec.get("lake")), ""]
    lines += ["## Plots", ""]
    for name in ("lag", "throughput", "memory"):
        if name in rel:
            lines += [f"![{name}]({rel[name]})", ""]
    lines += _flow_table(result) + _memory_table(result) + _ministack_section(result)
    if result.get("died"):
        lines += ["## Parts that exited", ""] + [f"```\n{d}\n```" for d in result["died"]] + [""]
    lines += _method()
    return "\n".join(lines) + "\n"


def machine_share(result: dict) -> dict | None:
    """After the warm-up, from /proc/stat and the processes' CPU: cores busy on the machine, of them the
    session's processes, the rest, and the share of time the hypervisor stole (mean and worst minute)."""
    points = [s for s in result["samples"] if s["t"] >= result["warmup_s"] and s.get("machine_cpu_s")]
    if len(points) < 2:
        return None
    first, last = points[0], points[-1]
    wall = last["t"] - first["t"]
    total = last["machine_cpu_s"]["total"] - first["machine_cpu_s"]["total"]
    if wall <= 0 or total <= 0:
        return None
    cores = total / wall
    busy = (last["machine_cpu_s"]["busy"] - first["machine_cpu_s"]["busy"]) / wall
    session = sum(last["cpu_s"][p] - first["cpu_s"][p] for p in last["cpu_s"] if p in first["cpu_s"]) / wall

    def steal(a: dict, b: dict) -> float:
        t = b["machine_cpu_s"]["total"] - a["machine_cpu_s"]["total"]
        return (b["machine_cpu_s"]["steal"] - a["machine_cpu_s"]["steal"]) / t if t > 0 else 0.0

    worst = max((steal(a, b) for i, a in enumerate(points) for b in points[i + 1:] if 55 <= b["t"] - a["t"] <= 65),
                default=steal(first, last))
    return {"cores": cores, "busy": busy, "session": session, "rest": max(0.0, busy - session),
            "steal": steal(first, last), "steal_worst_minute": worst}


def _machine_line(share: dict | None) -> list[str]:
    if share is None:
        return []
    cpu = (f"CPU after the warm-up: {share['busy']:.2f} of {share['cores']:.0f} cores busy on average, "
           f"{share['session']:.2f} of them the session's processes, {share['rest']:.2f} the rest (the soak's own "
           f"sampling, the kernel, anything else); the hypervisor took {share['steal']:.1%} of the time (steal), "
           f"{share['steal_worst_minute']:.1%} in the worst minute")
    if share["rest"] > 0.25 or share["steal_worst_minute"] > 0.1:
        return [f"* **measured with other load** ({cpu}): rates and slopes are not those of a quiet machine"]
    return [f"* {cpu}"]


def _maintenance_line(result: dict) -> list[str]:
    m = result.get("maintenance")
    if not m:
        return []
    return [f"* the tracker's maintenance pass (retention, partitions) every {m['interval_s']:g} s "
            f"(`TRACKER_MAINTENANCE_INTERVAL_S`; the tracker's default is hourly): {m['passes_due']} passes due in "
            f"its {m['tracker_ran_s'] / 60:.1f} minutes, its history counted after them"]


def _retention_line(result: dict) -> list[str]:
    keep = result.get("ministack_retention_s")
    if not keep:
        return []
    logs_s, metrics_s = ministack_bound_defaults()
    return [f"* MiniStack's log streams and raw datapoints kept {keep:g} s (`MINISTACK_LOGS_KEEP_S`, "
            f"`MINISTACK_METRICS_RAW_S`; their defaults are {logs_s} and {metrics_s} s), so its memory is judged "
            f"with both bounds acting"]


def ministack_bound_defaults() -> tuple[int, int]:
    """MINISTACK_LOGS_KEEP_S's and MINISTACK_METRICS_RAW_S's defaults, as infra/stack/servers.py declares them."""
    defaults = {f.name: f.default for f in dataclasses.fields(StackConfig)}
    return defaults["ministack_logs_keep_s"], defaults["ministack_metrics_raw_s"]


def _lake_sentence(lake: dict | None) -> str:
    if not lake:
        return ""
    if "error" in lake:
        return f" Lake: no recount ({lake['error']})."
    return (f" Lake: {lake['rows']:,} rows in {lake['table']} for {lake['distinct_positions']:,} distinct positions "
            f"({lake['missing']:,} missing, {lake['doubled']:,} doubled); {lake['rejects']:,} rejects for "
            f"{lake['malformed']:,} malformed.")


def _tracker_sentence(tracker: dict | None) -> str:
    if not tracker:
        return ""
    if "error" in tracker:
        return f" Tracker: no recount ({tracker['error']})."
    return (f" Tracker: {tracker['rows']:,} rows in PostgreSQL for {tracker['distinct_positions']:,} distinct positions "
            f"among {tracker['records']:,} records in Kafka; {tracker['rejects']:,} rejects for "
            f"{tracker['malformed']:,} malformed.")


def _flow_table(result: dict) -> list[str]:
    rows = _minute_rows(result["samples"])
    if not rows:
        return []
    groups = sorted({g for s in rows for g in s["lag"]})
    queues = sorted({q for s in rows for q in s["queues"]})
    head = ["minute", "in rec/s"] + [f"out {g} rec/s" for g in groups] + [f"lag {g}" for g in groups] + \
           [f"queue {q}" for q in queues]
    out = ["## Per minute: flow", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    prev = {"t": 0.0, "produced": 0, "committed": {}}
    for s in rows:
        dt = s["t"] - prev["t"] or 1.0
        cells = [f"{s['t'] / 60:.0f}", f"{(s['produced'] - prev['produced']) / dt:,.0f}"]
        cells += [f"{(s['committed'].get(g, 0) - prev['committed'].get(g, 0)) / dt:,.0f}" for g in groups]
        cells += [f"{s['lag'].get(g, 0):,}" for g in groups]
        cells += [f"{s['queues'].get(q, 0):,}" for q in queues]
        out.append("| " + " | ".join(cells) + " |")
        prev = s
    return out + [""]


def _memory_table(result: dict) -> list[str]:
    samples = result["samples"]
    rows = _minute_rows(samples)
    if not rows:
        return []
    processes = sorted({p for s in samples for p in s["memory_mb"]})
    warm = result["warmup_s"]
    out = ["## Memory and CPU per process", "",
           "| process | MB after warm-up | MB at the end | slope after warm-up | CPU cores used (average) |",
           "|---|---|---|---|---|"]
    for p in processes:
        points = [(s["t"], s["memory_mb"][p]) for s in samples if p in s["memory_mb"]]
        after = gates.after(points, warm) or points
        cpu = [(s["t"], s["cpu_s"].get(p)) for s in samples if s["cpu_s"].get(p) is not None]
        cores = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if len(cpu) > 1 and cpu[-1][0] > cpu[0][0] else 0
        out.append(f"| {p} | {after[0][1]:,.0f} | {points[-1][1]:,.0f} | "
                   f"{gates.theil_sen_slope(after) * 60:+.2f} MB/min | {cores:.2f} |")
    out += ["", "Per minute (MB):", "", "| minute | " + " | ".join(processes) + " |", "|---|" + "---|" * len(processes)]
    for s in rows:
        out.append(f"| {s['t'] / 60:.0f} | " + " | ".join(f"{s['memory_mb'].get(p, 0):,.0f}" for p in processes) + " |")
    return out + [""]


def _ministack_section(result: dict) -> list[str]:
    inv = result.get("ministack") or {}
    if not inv.get("log_groups"):
        return []
    out = ["## What MiniStack holds at the end", "",
           "| log group | log streams | retention (days) | invocations (AWS/Lambda) |", "|---|---|---|---|"]
    for name, g in inv["log_groups"].items():
        fn = name.rsplit("/", 1)[-1]
        out.append(f"| {name} | {g['streams']:,} | {g.get('retention_days') or '-'} | "
                   f"{inv.get('invocations', {}).get(fn, '-'):,} |")
    return out + ["", "MiniStack writes a log stream per invocation and applies no retention policy; as `make run` "
                      "starts it, it keeps the streams of the last `MINISTACK_LOGS_KEEP_S` and the datapoints older "
                      "than `MINISTACK_METRICS_RAW_S` as one statistic set per minute "
                      "(infra/stack/ministack_main.py; the soak sets both to `--ministack-retention-s`): "
                      "see docs/OPERATIONS.md, \"What grows, and what bounds it\".", ""]


def _method() -> list[str]:
    return [
        "## How it is measured", "",
        "* A fresh stack in `.state/soak/` (`make run`), `make deploy-resources`, then each long-running part of the "
        "typical session (docs/OPERATIONS.md, running the parts by hand) that exists on this branch (`make trigger`, `make alerts-trigger`, `make tracker`, "
        "`make notifications`, `make alerts`, `make produce`), run as the command its make target runs.",
        "* Every 10 s: the topic's end offsets (records in), each consumer group's committed offsets (records out; "
        "the consumers commit only handled records) and lag (end - committed), resident memory from /proc "
        "(VmRSS; for a group of processes, PostgreSQL's and MiniStack's function workers, the sum of their anonymous memory, Pss_Anon, which counts a copy-on-write page once and leaves out shared memory such as PostgreSQL's shared buffer cache, bounded by shared_buffers), CPU "
        "seconds, and each SQS queue's depth (visible + in flight).",
        f"* Gates after the warm-up: the lag of each group must not rise over the second half by more than its own "
        f"spread there and {gates.LAG_TOLERANCE_INPUT_S:g} s of input (Theil-Sen slope x time); no process may grow "
        f"faster than {gates.MEMORY_LIMIT_MB_PER_MIN:g} MB/min (Theil-Sen slope: the median of the slopes between "
        f"all pairs of samples, robust to garbage collection) unless the rise that slope adds up to over the measured "
        f"time is within the process's own noise (the interquartile range of its samples around the line) or under "
        f"{gates.MEMORY_MIN_RISE_MB:g} MB, which a few minutes of a noisy process (the broker saws by +-7 MB) draw "
        f"from noise alone, or it was a step of at most {gates.MEMORY_MAX_STEP_MB:g} MB that stopped: over the second "
        f"half it rose no more than its noise or {gates.MEMORY_LEVEL_MB:g} MB (a high-water mark, then level); records/s out in the last 5 minutes (a third of the "
        f"measured time in shorter runs) must be >= {gates.THROUGHPUT_MIN_RATIO:.0%} of the first 5. A short run "
        "shows what grows, not reliably how fast.",
        "* Then the producer stops, the consumers drain, the notification printer empties the queue, and the run is "
        "reconciled with `make demo`'s own recount (`infra/demo/observe.py`): the run's records read back from Kafka through "
        "the function's filter, the function's metrics, the dead-letter topic and the subscriber's count.",
        "* The tracker's history is counted in the store, not from its counter (`infra/demo/tracker_recount.py`'s recount, "
        "as `make demo` does it): once the tracker has stopped, the run's records are decoded with the tracker's "
        "decoder, and the distinct (icao24, time_position) among them must equal the rows PostgreSQL holds for that "
        "offset range, read over a connection of the soak's own; the malformed ones, the rows of `tracker_rejects`. "
        "The tracker's maintenance pass runs every `--maintenance-interval-s` (2 minutes) meanwhile, so the count "
        "comes after many passes.",
        "* MiniStack applies an SQS queue's MessageRetentionPeriod only when the queue is read or its attributes "
        "are asked for; the soak's depth sampling asks every 10 s.",
        "",
    ]
