"""`make up`, `make ps`, `make logs`, `make down`: the typical session in the background, in one command.

    python -m infra.session.up start [--timeout 240] [--since EPOCH]   start the parts, wait until the map shows aircraft
    python -m infra.session.up ps                                      the processes (pid, CPU, memory) and each group's lag
    python -m infra.session.up logs [--part trigger,tracker]           follow the logs (tail -F)
    python -m infra.session.up down [--stack native|docker]            stop the parts and the stack; check none is left

`make up` runs `make run` (the stack) and `make deploy-resources` first, then `start`: each part of
infra/session/parts.py in its own session (a Ctrl-C in that terminal does not reach it), its output in
<STACK_STATE_DIR>/logs/<part>.log, and what was started (pid, start time, command) in
<STACK_STATE_DIR>/session.json, so `ps`, `logs` and `down` work from any later shell.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import psutil

from infra import progress

from infra.stack import postgres, processes, servers as stack
from infra.session.parts import MAPPINGS, UP_SESSION, SessionPart, command
from pipeline_common.settings import ConfigError

ROOT = stack.ROOT
SESSION_FILE = stack.STATE / "session.json"
LOG_DIR = stack.LOG_DIR
KAFKA_CLIENT_LOG = LOG_DIR / "kafka-client.log"
# The stack's own processes and logs (infra/stack/servers.py, infra/stack/postgres.py).
STACK_PIDS = {"kafka": stack.PIDS["kafka"], "ministack": stack.PIDS["ministack"], "postgres": postgres.PID_FILE}
STACK_LOGS = {"kafka": LOG_DIR / "kafka.out", "ministack": LOG_DIR / "ministack.out", "postgres": postgres.LOG}
PROGRESS_EVERY_S = 5.0
STOP_TIMEOUT_S = 30.0


say = progress.printer("[up]")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def part_log(name: str) -> Path:
    return LOG_DIR / f"{name}.log"


# --------------------------------------------------------------------------- what `start` started

@dataclass(frozen=True)
class Started:
    """One part `start` launched, as session.json records it."""
    name: str
    pid: int
    create_time: float   # with the pid: the same process, not a later one that got its pid
    command: list[str]
    log: str
    stop_signal: int

    def process(self) -> psutil.Process | None:
        """The part's process while it runs, else None."""
        processes.reap(self.pid)  # an exited child of this very process (start) is a zombie until reaped
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def load_session(path: Path | None = None) -> list[Started]:
    path = path or SESSION_FILE
    try:
        return [Started(**entry) for entry in json.loads(path.read_text())["parts"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"{rel(path)} is not what `make up` writes ({exc}); remove it") from None


def save_session(parts: list[Started], path: Path | None = None) -> None:
    path = path or SESSION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"parts": [asdict(p) for p in parts]}, indent=2) + "\n")


def part_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"  # a part's lines reach its log as they happen, for `make logs`
    # Lines for a person (`make logs`), unless LOG_FORMAT says otherwise; kafka-python's own lines
    # then go to one file of this stack's, not to each part's log.
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("KAFKA_CLIENT_LOG", str(KAFKA_CLIENT_LOG))
    return env


def spawn(part: SessionPart, env: dict[str, str]) -> Started:
    argv = command(part, env)
    log = part_log(part.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():  # the previous session's log stays readable once, beside the new one
        log.replace(log.with_name(log.name + ".1"))
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:  # exited at once: the wait below reports it with its log
        create_time = time.time()
    return Started(part.name, proc.pid, create_time, argv, rel(log), int(part.stop_signal))


# --------------------------------------------------------------------------- start

def map_base_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches the tracker (a wildcard listen address is not one)."""
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def kafka_answers(cfg: stack.StackConfig) -> bool:
    # A closed port first: kafka-python retries a refused bootstrap for ~30 s before it gives up.
    return stack._port_open(cfg.kafka_port) and stack.kafka_ready(cfg.bootstrap)


def aircraft_count(base_url: str, timeout_s: float = 3.0) -> int | None:
    """How many aircraft GET /flights lists, or None while the API does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/flights", timeout=timeout_s) as resp:
            return int(json.loads(resp.read())["count"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def wait_for_aircraft(base_url: str, parts: list[Started], timeout_s: float, began: float,
                      count: Callable[[str], int | None] = aircraft_count, clock: Callable[[], float] = time.time,
                      sleep: Callable[[float], None] = time.sleep, progress_every_s: float = PROGRESS_EVERY_S,
                      out: Callable[[str], None] = say) -> tuple[int | None, list[Started]]:
    """Until GET /flights lists aircraft: (how many, []); or (None, the parts that exited) when one
    exits or ``timeout_s`` passes (then no part exited: (None, [])). A progress line every few seconds."""
    deadline = clock() + timeout_s
    next_progress = clock() + progress_every_s
    while True:
        dead = [p for p in parts if p.process() is None]
        if dead:
            return None, dead
        n = count(base_url)
        if n:
            return n, []
        now = clock()
        if now >= deadline:
            return None, []
        if now >= next_progress:
            out(f"{now - began:4.0f} s: " + ("the tracker's API does not answer yet" if n is None
                                               else "the tracker answers; no aircraft on the map yet"))
            next_progress = now + progress_every_s
        sleep(1.0)


def start(timeout_s: float, began: float | None = None) -> int:
    from tracker.settings import TrackerConfig

    began = began or time.time()
    cfg = stack.StackConfig.from_env()
    if not (kafka_answers(cfg) and stack.endpoint_ready(cfg.endpoint)):
        say(f"the stack does not answer (Kafka {cfg.bootstrap}, AWS {cfg.endpoint}): "
            "`make up` starts it first (make run, make deploy-resources)")
        return 1
    tracker = TrackerConfig.from_env()
    base_url = map_base_url(tracker.api_host, tracker.api_port)
    env = part_env()
    started = [p for p in load_session() if p.process() is not None]
    running = {p.name for p in started}
    for part in UP_SESSION:
        if part.name in running:
            pid = next(p.pid for p in started if p.name == part.name)
            say(f"{part.name:13s} already running (pid {pid})")
            continue
        launched = spawn(part, env)
        started.append(launched)
        save_session(started)  # after each: a failure half-way still leaves `make down` a full record
        say(f"{part.name:13s} pid {launched.pid:<7d} {' '.join(launched.command)}")
    say(f"waiting for aircraft on the map ({base_url}/flights; up to {timeout_s:.0f} s)")
    try:
        n, dead = wait_for_aircraft(base_url, started, timeout_s, began)
    except KeyboardInterrupt:
        say("stopped waiting; the session keeps running (make ps, make logs, make down)")
        return 130
    if not n:
        for part in dead:
            say(f"{part.name} exited; the last lines of {part.log}:\n{processes.log_tail(ROOT / part.log)}")
        if not dead:
            say(f"no aircraft on the map after {timeout_s:.0f} s; the last lines of the tracker's and the "
                "producer's logs:")
            for name in ("tracker", "producer"):
                print(f"--- {rel(part_log(name))}\n{processes.log_tail(part_log(name), 10)}")
        say("the rest keeps running: make ps, make logs, make down")
        return 1
    print_ready(n, time.time() - began, base_url)
    return 0


def print_ready(aircraft: int, seconds: float, base_url: str) -> None:
    names = ", ".join(p.name for p in UP_SESSION)
    say(f"{aircraft:,} aircraft on the map, {seconds:.0f} s after `make up` began")
    print(f"  map    {base_url}/")
    print(f"  API    {base_url}/docs  (GET /flights, /stats, /alerts; WebSocket /ws/flights)")
    print(f"  stats  {base_url}/stats.html")
    print(f"  logs   {rel(LOG_DIR)}/<part>.log for {names}: make logs [PART=tracker|notifications|...]")
    print(f"         the stack's: {', '.join(rel(p) for p in STACK_LOGS.values())}; "
          f"kafka-python's own: {rel(KAFKA_CLIENT_LOG)}")
    print("  next   make ps (processes, CPU, memory, lag) · make logs · make down (stops all of it)")


# --------------------------------------------------------------------------- ps

def _pid_in(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if processes.alive(pid) else None


def _tree(pid: int) -> list[psutil.Process]:
    found = []
    for p in processes.with_children(pid):
        try:
            found.append(psutil.Process(p))
        except psutil.NoSuchProcess:
            pass
    return found


def process_rows(sample_s: float = 1.0) -> list[dict]:
    """Every process of the session: the stack's (with MiniStack's function workers and PostgreSQL's
    backends) and the parts', with CPU over ``sample_s`` and resident memory, children included."""
    rows = []
    for name, pid_file in STACK_PIDS.items():
        pid = _pid_in(pid_file)
        rows.append({"part": name, "pid": pid, "log": rel(STACK_LOGS[name]),
                     "procs": _tree(pid) if pid else []})
    started = {part.name: part for part in load_session()}
    for spec in UP_SESSION:  # every part, so a missing one shows as not running
        part = started.get(spec.name)
        proc = part.process() if part else None
        rows.append({"part": spec.name, "pid": part.pid if proc else None,
                     "log": part.log if part else rel(part_log(spec.name)), "procs": _tree(part.pid) if proc else []})
    for row in rows:
        for p in row["procs"]:
            try:
                p.cpu_percent(None)  # the first call starts the measurement
            except psutil.Error:
                pass
    time.sleep(sample_s)
    now = time.time()
    for row in rows:
        cpu = rss = 0.0
        alive = []
        for p in row["procs"]:
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(None)
                    rss += p.memory_info().rss
                alive.append(p)
            except psutil.Error:
                pass
        row.update(cpu=cpu, rss_mb=rss / 2 ** 20, children=max(0, len(alive) - 1),
                   uptime_s=now - alive[0].create_time() if alive else None)
    return rows


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_process_rows(rows: list[dict]) -> list[str]:
    lines = [f"{'part':13s} {'pid':>7s} {'CPU %':>6s} {'memory':>9s} {'up':>8s}  log"]
    for r in rows:
        if r["pid"] is None:
            lines.append(f"{r['part']:13s} {'-':>7s} {'-':>6s} {'-':>9s} {'-':>8s}  {r['log']}  (not running)")
            continue
        extra = f"  (+{r['children']} child process{'es' if r['children'] != 1 else ''})" if r["children"] else ""
        lines.append(f"{r['part']:13s} {r['pid']:>7d} {r['cpu']:>6.1f} {r['rss_mb']:>6.0f} MB "
                     f"{_uptime(r['uptime_s']):>8s}  {r['log']}{extra}")
    return lines


def consumer_groups() -> list[tuple[str, object]]:
    """(who, config with group_id, topics, kafka) for each mapping of the session's trigger, the tracker and the
    archiver."""
    from tracker.settings import TrackerConfig
    from trigger.declarations import load_mappings

    groups: list[tuple[str, object]] = [(f"trigger: {c.function_name}", c) for c in load_mappings(ROOT / MAPPINGS)]
    tracker = TrackerConfig.from_env()
    groups.append(("tracker", SimpleNamespace(group_id=tracker.group_id, topics=(tracker.topic,),
                                              kafka=tracker.kafka)))
    # The archiver resumes from the offsets in the lake's own snapshots; it commits the group's offsets after
    # each lake commit as well, so this lag is the lake's (up to one commit interval behind).
    from archiver.settings import ArchiverConfig
    archiver = ArchiverConfig.from_env()
    groups.append(("archiver", SimpleNamespace(group_id=archiver.lake.group_id, topics=(archiver.topic,),
                                               kafka=archiver.kafka)))
    return groups


def lag_lines(groups: list[tuple[str, object]], group_lag: Callable[[object], dict]) -> list[str]:
    """One line per consumer group: its OffsetLag over every partition, as `make lag` counts it."""
    lines = [f"{'consumer group':24s} {'of':28s} {'partitions':>10s} {'lag':>10s}"]
    for who, config in groups:
        offsets = group_lag(config)
        lag = sum(end - (committed or 0) for committed, end in offsets.values())
        lines.append(f"{config.group_id:24s} {who:28s} {len(offsets):>10d} {lag:>10,}")
    return lines


def ps() -> int:
    from trigger.lag import group_lag

    rows = process_rows()
    print("\n".join(format_process_rows(rows)))
    print()
    cfg = stack.StackConfig.from_env()
    if not kafka_answers(cfg):
        print(f"consumer lag: Kafka at {cfg.bootstrap} does not answer")
        return 1
    print("\n".join(lag_lines(consumer_groups(), group_lag)))
    return 0


# --------------------------------------------------------------------------- logs

def log_files() -> dict[str, Path]:
    """Every log `make logs PART=...` can follow, by part name."""
    return {**{p.name: part_log(p.name) for p in UP_SESSION}, **STACK_LOGS, "kafka-client": KAFKA_CLIENT_LOG}


def logs_to_follow(part: str | None) -> list[Path]:
    """The logs of PART (a name, or several with commas); without one, the services' (not the printers':
    their data would drown the rest)."""
    files = log_files()
    if not part:
        return [part_log(p.name) for p in UP_SESSION if not p.prints_data]
    names = [n.strip() for n in part.split(",") if n.strip()]
    unknown = [n for n in names if n not in files]
    if unknown:
        raise ValueError(f"no part called {', '.join(unknown)}; PART is one of {', '.join(files)}")
    return [files[n] for n in names]


def logs(part: str | None, lines: int = 20) -> int:
    try:
        files = logs_to_follow(part)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not any(f.exists() for f in files):
        say(f"no log yet in {rel(LOG_DIR)}: start the session with `make up`")
        return 1
    # tail -F follows a log by name: it keeps following when the next `make up` starts a new one.
    os.execvp("tail", ["tail", "-n", str(lines), "-F", *map(str, files)])
    return 0  # not reached


# --------------------------------------------------------------------------- down

def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_parts(parts: list[Started], timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Each running part gets its stop signal once (all at the same time: each drains on its own), then
    SIGKILL if it is still there after ``timeout_s``. Returns the names of those that were running."""
    running = [(p, p.process()) for p in parts]
    running = [(p, proc) for p, proc in running if proc is not None]
    for part, _ in running:
        _signal_group(part.pid, part.stop_signal)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(p.process() is not None for p, _ in running):
        time.sleep(0.2)
    for part, _ in running:
        if part.process() is not None:
            say(f"{part.name} (pid {part.pid}) did not stop within {timeout_s:.0f} s; killing it")
            _signal_group(part.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(processes.group_alive(p.pid) for p, _ in running):
        time.sleep(0.1)
    return [p.name for p, _ in running]


def session_processes(parts: list[Started]) -> list[psutil.Process]:
    """Every process `down` must leave gone: the parts, the stack's, and all their children."""
    pids = [p.pid for p in parts if p.process() is not None]
    pids += [pid for pid in (_pid_in(f) for f in STACK_PIDS.values()) if pid]
    return [proc for pid in pids for proc in _tree(pid)]


def down(stack_kind: str = "native") -> int:
    parts = load_session()
    watched = session_processes(parts)
    stopped = stop_parts(parts)
    say(f"stopped {', '.join(stopped)}" if stopped else "no part of `make up` was running")
    SESSION_FILE.unlink(missing_ok=True)
    stack.down(stack_kind)
    left = [p for p in watched if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if left:
        say("still running: " + ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in left))
        return 1
    say(f"nothing left running ({len(watched)} process(es) of the session gone)" if watched
        else "nothing left running")
    return 0


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.session.up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p_start = commands.add_parser("start", help="start the session's parts, wait until the map shows aircraft")
    p_start.add_argument("--timeout", type=float, default=240.0,
                         help="seconds to wait for aircraft on the map (default 240)")
    p_start.add_argument("--since", type=float, default=None, metavar="EPOCH",
                         help="when `make up` began (seconds since the epoch), for the time it reports")
    commands.add_parser("ps", help="pid, CPU, memory of every process; each consumer group's lag")
    p_logs = commands.add_parser("logs", help="follow the logs (tail -F)")
    p_logs.add_argument("--part", default=None,
                        help="one part, or several with commas (default: trigger, tracker, producer)")
    p_logs.add_argument("--lines", type=int, default=20, help="lines of each log to show first (default 20)")
    p_down = commands.add_parser("down", help="stop the parts and the stack")
    p_down.add_argument("--stack", choices=["native", "docker"], default=os.environ.get("STACK", "native"))
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            return start(args.timeout, args.since)
        if args.command == "ps":
            return ps()
        if args.command == "logs":
            return logs(args.part, args.lines)
        return down(args.stack)
    except (stack.StackError, postgres.PostgresError, ConfigError, RuntimeError) as exc:
        progress.say(f"error: {exc}", "[up]", stderr=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
