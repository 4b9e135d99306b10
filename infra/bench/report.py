"""Turns one benchmark run's results into docs/BENCHMARKS.md: tables, targets met or not, and what bounds them."""
from __future__ import annotations

from datetime import datetime, timezone

from infra.bench import history_ingest as tracker_section
from infra.bench import lake as lake_section
from infra.bench import wire_format

# Each target is a ratio or an absolute figure measured in the same run.
TARGETS = {
    "e2e_vs_sink": "end to end >= 0.9 x the sink ceiling (notifications/s, same run)",
    "e2e_vs_seed": "end to end >= 50 x the seed's design (positions/s, same run)",
    "capacity": "capacity without the sink >= 50,000 positions/s (2 cores)",
    "p99_at_1000": "p99 producer-to-subscriber latency <= 1.5 s at 1,000 positions/s",
    "trigger_rss": "trigger peak resident memory <= 200 MB at full rate",
    "map_p99": "p99 Kafka record -> browser update latency <= 1.5 s at 1,000 positions/s (live map)",
    "session": "the whole session sustains 1,000 positions/s for 60 minutes on 2 cores (`make soak`: docs/SOAK.md, "
               "its latest run, not this one)",
}
LIMITS = {"e2e_vs_sink": 0.9, "e2e_vs_seed": 50.0, "capacity": 50_000.0, "p99_at_1000": 1500.0, "trigger_rss": 200.0,
          "map_p99": 1500.0, "session": 1000.0}
SESSION_MINUTES = 60
TARGETS.update(tracker_section.TARGETS)
LIMITS.update(tracker_section.LIMITS)
TARGETS.update(lake_section.TARGETS)
LIMITS.update(lake_section.LIMITS)

PROCESS_ORDER = ("MiniStack", "function workers", "trigger", "producer", "Kafka broker", "sink clients",
                 "bench harness")


def _n(value, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _cores(cpu: dict | None) -> str:
    """'MiniStack 0.95, function workers 0.60, ...' in cores (1.00 = one core busy for the whole run)."""
    if not cpu or not cpu.get("wall_s"):
        return "n/a"
    wall = cpu["wall_s"]
    parts = [f"{name} {cpu['cpu_s'][name] / wall:.2f}" for name in PROCESS_ORDER
             if cpu["cpu_s"].get(name, 0) / wall >= 0.005]
    parts.append(f"other {cpu['other_s'] / wall:.2f}")
    return ", ".join(parts)


def _per_item_us(cpu: dict, items: int, include_harness: bool = False) -> dict[str, float]:
    """CPU microseconds per record (or notification) of each process group."""
    if not items:
        return {}
    return {name: cpu["cpu_s"][name] / items * 1e6 for name in PROCESS_ORDER
            if cpu["cpu_s"].get(name) and (include_harness or name != "bench harness")}


def _steady(row: dict) -> tuple[dict, int]:
    """(CPU split, items) of a run's steady part when it was measured, else of the whole run."""
    if row.get("cpu_steady") and (row.get("steady_records") or row.get("steady_notifications")):
        return row["cpu_steady"], row.get("steady_records") or row.get("steady_notifications")
    return row["cpu"], row.get("handled") or row.get("notifications") or row.get("messages")


def _us_list(per: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.0f} µs" for k, v in per.items())


def _e2e_vs_sink_bound(sink: dict, best: dict) -> str:
    ceiling_row = max((r for r in sink["rows"] if not r.get("processes")), key=lambda r: r["rate"])
    sink_per = _per_item_us(ceiling_row["cpu"], ceiling_row["messages"], include_harness=True)
    e2e_cpu, e2e_items = _steady(best)
    e2e_per = _per_item_us(e2e_cpu, e2e_items)
    e2e_total, sink_total = sum(e2e_per.values()), sum(sink_per.values())
    if not e2e_total or not sink_total:
        return ""
    return (f"CPU per notification, sink alone: {_us_list(sink_per)} = {sink_total:,.0f} µs; end to end at "
            f"{_n(best['offered'])} offered/s: {_us_list(e2e_per)} = {e2e_total:,.0f} µs. The sink alone already "
            f"keeps both cores nearly busy ({_cores(ceiling_row['cpu'])}); end to end, the function's invocation, "
            f"record parsing and metrics, the trigger and the broker add {e2e_total / sink_total - 1:.0%} CPU per "
            f"notification on the same cores, which by itself caps the pipeline at {sink_total / e2e_total:.2f} x "
            f"the sink's rate. Cores used end to end: {_cores(e2e_cpu)}")


def evaluate_targets(results: dict) -> list[dict]:
    """One entry per target: measured value, met (None when its sections did not run), and what bounds it."""
    sink = results.get("sink")
    e2e = results.get("end_to_end")
    cap = results.get("capacity")
    seed = results.get("seed")
    out = []

    def add(key: str, measured, shown: str, met, bound: str = "") -> None:
        out.append({"key": key, "target": TARGETS[key], "measured": measured, "shown": shown, "met": met,
                    "bound": bound})

    if sink and e2e and sink.get("ceiling"):
        ratio = e2e["max_notifications_per_s"] / sink["ceiling"]
        best = max(e2e["rows"], key=lambda r: r["notifications_per_s"] or 0)
        add("e2e_vs_sink", ratio, f"{_n(e2e['max_notifications_per_s'])} / {_n(sink['ceiling'])} = {ratio:.2f}",
            ratio >= LIMITS["e2e_vs_sink"], _e2e_vs_sink_bound(sink, best))
    else:
        add("e2e_vs_sink", None, "not run", None)

    if seed and e2e and seed.get("rate"):
        ratio = e2e["max_positions_per_s"] / seed["rate"]
        row = seed["rows"][0]
        add("e2e_vs_seed", ratio, f"{_n(e2e['max_positions_per_s'])} / {_n(seed['rate'], 1)} = {ratio:,.0f}",
            ratio >= LIMITS["e2e_vs_seed"],
            f"one invocation per position: invoke p50 {_n(row['trigger'].get('invoke_p50_ms'))} ms; "
            f"cores used: {_cores(row['cpu'])}")
    else:
        add("e2e_vs_seed", None, "not run", None)

    if cap:
        row = cap["row"]
        cpu, items = _steady(row)
        per = _per_item_us(cpu, items)
        total = sum(per.values())
        cores = cpu["cores"]
        bound = ""
        if per:
            bound = (f"CPU per record: {_us_list(per)} = {total:,.0f} µs; {cores} cores / {total:,.0f} µs = at most "
                     f"{_n(cores / total * 1e6)} positions/s even with no idle moment. Kafka's record parsing in "
                     "kafka-python (trigger), the event's JSON parsed and re-serialised by MiniStack and parsed again "
                     "by the function's worker, and the function's own parsing of every record are per-record costs "
                     f"of this stack. Cores used: {_cores(cpu)}")
        add("capacity", row["rate"], f"{_n(row['rate'])} positions/s", (row["rate"] or 0) >= LIMITS["capacity"], bound)
    else:
        add("capacity", None, "not run", None)

    at_1000 = next((r for r in (e2e or {}).get("rows", []) if r["offered"] == 1000), None)
    if at_1000 and at_1000["latency_ms"]:
        lat, trig = at_1000["latency_ms"], at_1000["trigger"]
        add("p99_at_1000", lat["p99"], f"{lat['p99'] / 1000:.2f} s (p50 {lat['p50'] / 1000:.2f} s)",
            lat["p99"] <= LIMITS["p99_at_1000"],
            f"a record waits up to the 0.5 s batching window, then behind the batch in flight on its partition, "
            f"then for its own invocation (invoke p50/p99 {_n(trig.get('invoke_p50_ms'))}/"
            f"{_n(trig.get('invoke_p99_ms'))} ms); cores used: {_cores(_steady(at_1000)[0])}")
    else:
        add("p99_at_1000", None, "not run", None)

    rss = [(r["trigger_peak_rss_mb"], f"end to end at {_n(r['offered'])}/s") for r in (e2e or {}).get("rows", [])]
    if cap:
        rss.append((cap["row"]["trigger_peak_rss_mb"],
                    f"capacity run, batch size {_n(cap['row']['batch_size'])}, {cap['row']['partitions']} partitions"))
    growth = results.get("growth") or {}
    for row in growth.get("partitions", []) + [r for r in growth.get("batch_sizes", []) if not r.get("from_capacity_run")]:
        rss.append((row["trigger_peak_rss_mb"], f"growth run, batch size {_n(row['batch_size'])}, "
                                                f"{row['partitions']} partitions"))
    if rss:
        peak, where = max(rss)
        add("trigger_rss", peak, f"{_n(peak)} MB ({where})", peak <= LIMITS["trigger_rss"],
            "records waiting and in flight: up to one full batch per partition in flight plus at most four full "
            "6 MB payloads buffered across partitions")
    else:
        add("trigger_rss", None, "not run", None)
    mp = results.get("map")
    if mp and mp["latency_ms"]["p99"] is not None:
        p99 = mp["latency_ms"]["p99"]
        add("map_p99", p99, f"{_n(p99)} ms at {_n(mp['rate'])} positions/s ({_n(mp['aircraft_shown'])} aircraft on the page)",
            p99 <= LIMITS["map_p99"] and mp["rate"] >= 1000,
            f"the tracker pushes WebSocket updates at most once a second (TRACKER_WS_INTERVAL_S), the first change "
            f"after a quiet second at once (after 0.1 s gathering the rest of its burst); record -> tracker sends p99 "
            f"{_n(mp['record_to_tracker_send_ms']['p99'])} ms, tracker sends -> page p99 "
            f"{_n(mp['tracker_send_to_page_ms']['p99'])} ms"
            + (f"; record -> the map redrawn with it p99 {_n(mp['record_to_drawn_ms']['p99'])} ms"
               if mp.get("record_to_drawn_ms", {}).get("p99") is not None else ""))
    else:
        add("map_p99", None, "not run", None)
    tracker_section.evaluate(results, add, _n)
    lake_section.evaluate(results, add, _n)
    soak = results.get("session")
    if soak:
        verdict = "passed" if soak["passed"] else "failed: " + "; ".join(soak["failed"])
        rate, minutes = soak["positions_per_s"], soak["minutes"]
        met = soak["passed"] and rate >= LIMITS["session"] and minutes >= SESSION_MINUTES
        add("session", rate, f"{_n(rate)} positions/s for {minutes:g} min, {verdict} ({soak['started_at'][:10]})",
            met, "" if met else
            f"the session's latest soak ran {_n(rate)} positions/s for {minutes:g} min"
            + ("" if soak["passed"] else " and did not pass")
            + "; the component figures above are what each part manages alone, the soak is all of them at once "
              "on the same 2 cores (its CPU per process: docs/SOAK.md)")
    else:
        add("session", None, "no soak summary (docs/soak/summary.json)", None)
    return out


def render(results: dict) -> str:
    m, st = results["machine"], results.get("stack", {})
    started = ("started by this run (fresh)" if st.get("started_by_this_run")
               else f"already running (MiniStack up {_n(st.get('ministack_uptime_min'))} min)")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`infra/bench/run.py`) at the end of its latest run; do not edit by hand.",
        "Every figure comes from that one run on the native stack: a real Kafka broker and MiniStack.",
        "",
        f"* run `{results['run_id']}`, {results['started_at']}, took {results['duration_s'] / 60:.1f} min",
        f"* command: `{results['command']}`",
        f"* machine: {m['cores']} cores, {m['memory_gib']} GiB RAM, {m['cpu_model']}, {m['kernel']}; "
        f"load average before the run {results['load_before'][0]:.2f}",
        "* versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"* stack: Kafka `{st.get('bootstrap')}`, MiniStack `{st.get('endpoint')}`, {started}",
        "",
        "## Targets",
        "",
        "| target | measured (same run) | met? |",
        "|---|---|---|",
    ]
    targets = results["targets"]
    for t in targets:
        met = "n/a" if t["met"] is None else ("**met**" if t["met"] else "**not met**")
        lines.append(f"| {t['target']} | {t['shown']} | {met} |")
    bounds = [t for t in targets if t["met"] is False and t["bound"]]
    if bounds:
        lines += ["", "What bounds the targets that are not met (figures from this run):", ""]
        lines += [f"* **{t['target']}**: {t['bound']}." for t in bounds]
    lines += ["", "CPU split: the cores each process used on average (1.00 = one core busy the whole time; "
              "`other` = everything else on the machine, e.g. other test runs), over the steady part of a run "
              "(10% to 90% of its records handled) where there is one, else over the whole run. CPU seconds are "
              "utime + stime from /proc.", ""]
    lines += _sink(results.get("sink")) + _e2e(results.get("end_to_end")) + _capacity(results.get("capacity"))
    lines += _seed(results.get("seed")) + _growth(results.get("growth"), results.get("end_to_end"))
    lines += tracker_section.render(results.get("tracker"), _n)
    lines += map_section(results.get("map"))
    lines += wire_format.render(results.get("format"), _n)
    lines += lake_section.render(results.get("archive"), results.get("lakequery"), results.get("tracker"), _n)
    lines += _method(results)
    return "\n".join(lines) + "\n"


def map_section(mp: dict | None) -> list[str]:
    if not mp:
        return []
    lat, steady, draw = mp["latency_ms"], mp["steady_latency_ms"], mp["draw_ms"]
    send, page = mp["record_to_tracker_send_ms"], mp["tracker_send_to_page_ms"]
    drawn = mp.get("record_to_drawn_ms") or {}
    return [
        "", "## Live map: Kafka record -> browser update", "",
        f"The synthetic producer offers {_n(mp['rate'])} positions/s for {_n(mp['seconds'])} s from a fleet of "
        f"{_n(mp['aircraft'])} aircraft to a topic of its own; `python -m tracker` consumes it (history in "
        "PostgreSQL) and the live map is open in Debian's headless Chromium (software rendering, no GPU). "
        "Latency = the time the page received the WebSocket update carrying a position minus that record's "
        "Kafka timestamp (same machine clock); `map redrawn` = the end of the first canvas redraw after that "
        "(when the map shows it).", "",
        "| positions produced | reached the page | aircraft on the page | latency p50 | p99 | max | "
        "steady p50 / p99 | record -> tracker sends p50 / p99 | tracker sends -> page p50 / p99 | "
        "record -> map redrawn p50 / p99 | canvas redraw p50 / p99 | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {_n(mp['produced'])} | {_n(mp['reached_browser'])} | {_n(mp['aircraft_shown'])} | {_n(lat['p50'])} ms | "
        f"{_n(lat['p99'])} ms | {_n(lat['max'])} ms | {_n(steady['p50'])} / {_n(steady['p99'])} ms | "
        f"{_n(send['p50'])} / {_n(send['p99'])} ms | {_n(page['p50'])} / {_n(page['p99'])} ms | "
        f"{_n(drawn.get('p50'))} / {_n(drawn.get('p99'))} ms | "
        f"{_n(draw['p50'], 1)} / {_n(draw['p99'], 1)} ms | {_n(mp.get('load_average'), 1)} |",
        "", "Canvas redraw: one redraw of every aircraft on one canvas (the last 50 redraws of the run, with the "
        "whole fleet on the page).",
    ]


def _sink(sink: dict | None) -> list[str]:
    if not sink:
        return []
    out = ["## 1. Sink ceiling: PublishBatch straight to the endpoint", "",
           "| clients | messages | seconds | messages/s | in subscriber queue | failed | CPU split |",
           "|---|---|---|---|---|---|---|"]
    for r in sink["rows"]:
        clients = f"{r['processes']} processes" if r.get("processes") else f"1 process, {r['threads']} thread(s)"
        out.append(f"| {clients} | {_n(r['messages'])} | {r['seconds']:.2f} | {_n(r['rate'])} | "
                   f"{_n(r['delivered'])} | {r['failed']} | {_cores(r['cpu'])} |")
    out += ["", f"Ceiling (1 and 4 client threads, the target's reference): **{_n(sink['ceiling'])} messages/s** "
            f"({sink['ceiling_threads']} thread(s))."]
    if sink.get("multi_process"):
        out += [f"From several client processes: {_n(sink['multi_process'])} messages/s (informative)."]
    return out + [""]


def _e2e(e2e: dict | None) -> list[str]:
    if not e2e:
        return []
    out = ["## 2. End to end: producer -> Kafka -> trigger -> Lambda -> SNS -> subscriber", "",
           "| offered positions/s | seconds | produced | positions/s | notifications/s | in the air | latency p50 "
           "| p95 | p99 | max | backlog after producer | keeps up | trigger RSS | producer RSS | CPU split |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in e2e["rows"]:
        lat = r["latency_ms"] or {}
        out.append(
            f"| {_n(r['offered'])} | {r['seconds']:g} | {_n(r['produced'])} | {_n(r['positions_per_s'])} "
            f"| {_n(r['notifications_per_s'])} | {r['in_air_share']:.0%} | {_n(lat.get('p50'))} ms "
            f"| {_n(lat.get('p95'))} ms | {_n(lat.get('p99'))} ms | {_n(lat.get('max'))} ms "
            f"| {r['backlog_drain_s']:.1f} s | {'yes' if r['keeps_up'] else 'no'} | {_n(r['trigger_peak_rss_mb'])} MB "
            f"| {_n(r['producer_peak_rss_mb'])} MB | {_cores(_steady(r)[0])} |")
    out += ["", f"Sustained maximum: **{_n(e2e['max_notifications_per_s'])} notifications/s**, "
            f"**{_n(e2e['max_positions_per_s'])} positions/s** end to end "
            f"(trigger `{' '.join(e2e.get('trigger_args', ()))}`, otherwise its defaults).", ""]
    return out


def _capacity(cap: dict | None) -> list[str]:
    if not cap:
        return []
    r = cap["row"]
    cpu, items = _steady(r)
    per = _per_item_us(cpu, items)
    return ["## 3. Capacity without the sink (every record filtered out in the function)", "",
            "| records | batch size | partitions = concurrency | positions/s | invocations | invoke p50 / p99 "
            "| trigger RSS | CPU split |", "|---|---|---|---|---|---|---|---|",
            f"| {_n(r['records'])} | {_n(r['batch_size'])} | {r['partitions']} | **{_n(r['rate'])}** "
            f"| {_n(r['trigger'].get('invocations'))} | {_n(r['trigger'].get('invoke_p50_ms'))} / "
            f"{_n(r['trigger'].get('invoke_p99_ms'))} ms | {_n(r['trigger_peak_rss_mb'])} MB | {_cores(cpu)} |",
            "", f"CPU per record: {_us_list(per)} (pre-filled at {_n(r['prefill']['rate'])} records/s by 2 loader "
            "processes).", ""]


def _seed(seed: dict | None) -> list[str]:
    if not seed:
        return []
    out = ["## 4. The seed's design: one invoke per message, one publish per record", "",
           "`python -m trigger --mode per-message --concurrency 1`: the raw message is the event, one at a time.", "",
           "| concurrency | records handled | positions/s | notifications | invoke p50 / p99 | CPU split |",
           "|---|---|---|---|---|---|"]
    for r in seed["rows"]:
        out.append(f"| {r['concurrency']} | {_n(r['handled'])} | **{_n(r['rate'], 1)}** | {_n(r['notifications'])} "
                   f"| {_n(r['trigger'].get('invoke_p50_ms'))} / {_n(r['trigger'].get('invoke_p99_ms'))} ms "
                   f"| {_cores(r['cpu'])} |")
    return out + [""]


def _growth(growth: dict | None, e2e: dict | None) -> list[str]:
    if not growth:
        return []
    out = ["## 5. Growth", "", "Partitions x trigger concurrency (no sink):", "",
           "| partitions = concurrency | batch size | records handled | positions/s | trigger RSS | CPU split |",
           "|---|---|---|---|---|---|"]
    for r in growth["partitions"]:
        out.append(f"| {r['partitions']} | {_n(r['batch_size'])} | {_n(r['handled'])} | {_n(r['rate'])} "
                   f"| {_n(r['trigger_peak_rss_mb'])} MB | {_cores(_steady(r)[0])} |")
    if growth["batch_sizes"]:
        out += ["", "Batch size (no sink, 6 partitions, concurrency 6):", "",
                "| batch size | records handled | positions/s | invocations | trigger RSS | CPU split |",
                "|---|---|---|---|---|---|"]
        for r in sorted(growth["batch_sizes"], key=lambda r: r["batch_size"]):
            out.append(f"| {_n(r['batch_size'])} | {_n(r['handled'])} | {_n(r['rate'])} "
                       f"| {_n(r['trigger'].get('invocations'))} | {_n(r['trigger_peak_rss_mb'])} MB "
                       f"| {_cores(_steady(r)[0])} |")
    if e2e:
        out += ["", "Resident memory (peak RSS, VmHWM) by end-to-end load:", "",
                "| offered positions/s | producer RSS | trigger RSS |", "|---|---|---|"]
        out += [f"| {_n(r['offered'])} | {_n(r['producer_peak_rss_mb'])} MB | {_n(r['trigger_peak_rss_mb'])} MB |"
                for r in e2e["rows"]]
    return out + [""]


def _method(results: dict) -> list[str]:
    return [
        "## How it is measured", "",
        f"* Every run uses its own Kafka topics, consumer groups, functions, SNS topics and SQS queues (names "
        f"`bench-{results['run_id']}-*`) and deletes them at the end. The producer, the trigger and the loaders run "
        "as subprocesses (`python -m producer`, `python -m trigger`). Functions are deployed with `LOG_LEVEL=INFO` "
        "(their documented default): MiniStack's workers otherwise inherit MiniStack's own `LOG_LEVEL=WARNING`, "
        "and MiniStack waits 50 ms for log output after every invocation of a function that writes none.",
        "* Sink ceiling: the function's own SNS client, notification bodies and attributes, 10 entries per "
        "PublishBatch, to a standard topic with one SQS subscriber (raw delivery, no filter policy), as in the "
        "end-to-end runs.",
        "* End to end: the synthetic producer offers a fixed rate (`--rate R --interval 0.1`) to a fresh 6-partition "
        "topic; a step lasts 10 s or 10,000 positions, whichever is shorter. Positions/s is the rate of records the "
        "trigger committed (it commits only handled records) between 10% and 90% of the step; notifications/s is "
        "that times the share in the air. Latency = SQS SentTimestamp - kafka_timestamp_ms of each notification: "
        "MiniStack delivers SNS -> SQS synchronously inside Publish, so SentTimestamp is when SNS accepted it. "
        "Notifications accumulate in the queue and are drained after the step (receiving concurrently would cost "
        "MiniStack about as much as publishing), so the subscriber takes no CPU while the pipeline is measured. "
        "Records of a step's first second are left out of the percentiles (the producer's rate mode sends a second's "
        "worth of positions in its first tick); `max` covers every notification. A load keeps up when it is handled "
        "at >= 90% of the offered rate with p99 <= 3 s; after the listed loads the load rises by half until it does "
        "not. The function's workers are warmed up (one invocation per partition) before anything is measured.",
        "* Capacity, seed design and growth: topics pre-filled by loader processes with the producer's Kafka "
        "settings (acks=all, idempotent, gzip) and JSON; rates from the consumer group's committed offsets, between "
        "10% and 90% of the topic when it is drained, else from the first commit to the end of the run.",
        "* CPU: utime + stime from /proc/<pid>/stat of MiniStack, the function's worker processes, the trigger, the "
        "producer, the broker and the harness; `other` is the rest of the machine's busy time (/proc/stat). Peak "
        "RSS is VmHWM from /proc/<pid>/status, read every 0.5 s while the process runs.",
        "* Tuning in the code measured here (made while profiling for these targets): the function encodes each "
        "PublishBatch body once instead of twice and skips client-side parameter validation, decodes ESM records "
        "with strict base64 and a single JSON pass; the trigger sizes fetched records in one pass and writes each "
        "record of the event with one formatting operation, bounds the records waiting behind the batches in "
        "flight to four 6 MB payloads across partitions, and lets glibc return freed payload buffers at once.",
        f"* Raw results: `.state/bench/results-{results['run_id']}.json`; child logs: "
        f"`.state/bench/logs/{results['run_id']}/`.",
        "",
        f"_Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}._",
    ]
