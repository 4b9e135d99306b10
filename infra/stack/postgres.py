"""The native PostgreSQL server of the stack: official binaries from Maven Central, no Docker, no root.

Zonky publishes the PostgreSQL server builds as `io.zonky.test.postgres:embedded-postgres-binaries-<os>-<arch>`
(a jar holding one .txz). `fetch()` resolves it through infra/stack/postgres-server/pom.xml and unpacks it once into
.cache/postgres; `start()` runs `initdb` once into .state/postgres/data and starts `postgres` on
127.0.0.1:POSTGRES_PORT. The server refuses to run as root, so as root (CI) it runs as `nobody`, which
then owns the data folder. With DATABASE_URL set the stack starts nothing: that server is used as is.
"""
from __future__ import annotations

import hashlib
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import zipfile
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

from infra.stack import processes
from infra.progress import printer
from infra.stack.state_dir import state_dir
from pipeline_common.settings import Settings
from tracker.settings import DATABASE_URL, POSTGRES_PORT, native_database_url

ROOT = Path(__file__).resolve().parents[2]

POM = ROOT / "infra" / "stack" / "postgres-server" / "pom.xml"
CACHE = ROOT / ".cache" / "postgres"
STATE = state_dir()  # the stack's own (STACK_STATE_DIR)
PG_DIR = STATE / "postgres"
LOG = STATE / "logs" / "postgres.out"
PID_FILE = STATE / "postgres.pid"
# The server never runs as root; `nobody` exists on every Linux and owns nothing else we care about.
RUN_AS = "nobody"
DATABASE = "flightpipe"
SUPERUSER = "flightpipe"

# (uname system, uname machine) -> the platform suffix of the zonky artifact.
_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64v8",
    ("Linux", "arm64"): "linux-arm64v8",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64v8",
}


class PostgresError(RuntimeError):
    """Something outside the project stops PostgreSQL; the message says what to do."""


@dataclass(frozen=True)
class PostgresConfig(Settings):
    USED_BY: ClassVar[str] = "`make run` (infra/stack/postgres.py)"
    FLAGS: ClassVar[bool] = False

    port: int = POSTGRES_PORT.field()
    database_url: str | None = DATABASE_URL.field()   # set: an outside server, nothing is started

    @property
    def external(self) -> bool:
        return self.database_url is not None

    @property
    def url(self) -> str:
        """What the tracker connects to: DATABASE_URL, else the native server's URL."""
        return self.database_url or native_database_url(self.port)


say = printer("[stack]")


def platform_suffix(system: str | None = None, machine: str | None = None) -> str:
    key = (system or platform.system(), machine or platform.machine())
    try:
        return _PLATFORMS[key]
    except KeyError:
        raise PostgresError(f"no PostgreSQL server build for {key[0]}/{key[1]} on Maven Central; set DATABASE_URL "
                            "to a PostgreSQL server you run yourself") from None


# --------------------------------------------------------------------------- binaries

def _stamp() -> str:
    return hashlib.sha256(POM.read_bytes() + platform_suffix().encode()).hexdigest()


def install_dir() -> Path:
    return CACHE / "install"


def fetch() -> Path:
    """Resolve and unpack the pinned server binaries once; later calls need no network."""
    target = install_dir()
    stamp = CACHE / ".pom-sha256"
    if stamp.exists() and stamp.read_text().strip() == _stamp() and (target / "bin" / "postgres").exists():
        return target
    if shutil.which("mvn") is None:
        raise PostgresError("Maven (mvn) is not installed; it resolves the PostgreSQL server binaries from "
                            "infra/stack/postgres-server/pom.xml. Install it (Debian: apt-get install maven).")
    suffix = platform_suffix()
    say(f"resolving PostgreSQL server binaries ({suffix}) with Maven into {CACHE.relative_to(ROOT)} (first run only)")
    if CACHE.exists():
        shutil.rmtree(CACHE)
    jars = CACHE / "jar"
    jars.mkdir(parents=True)
    proc = subprocess.run(["mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
                           f"-DoutputDirectory={jars}", "-DincludeScope=runtime", f"-Dpostgres.platform={suffix}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise PostgresError(f"Maven could not resolve the PostgreSQL binaries ({suffix}). Maven said:\n{tail}")
    jar = next(jars.glob("embedded-postgres-binaries-*.jar"))
    with zipfile.ZipFile(jar) as zf:
        txz = next(n for n in zf.namelist() if n.endswith(".txz"))
        zf.extract(txz, jars)
    target.mkdir(parents=True)
    with tarfile.open(jars / txz, "r:xz") as tf:
        tf.extractall(target, filter="tar")
    shutil.rmtree(jars)
    for path in [target, *target.rglob("*")]:
        # Readable (and the folders traversable) by the unprivileged user that runs the server.
        path.chmod(path.stat().st_mode | 0o055 if path.is_dir() else path.stat().st_mode | 0o044)
    stamp.write_text(_stamp())
    return target


# --------------------------------------------------------------------------- process

def _as_server_user(argv: list[str]) -> list[str]:
    """Root cannot run PostgreSQL: drop to `nobody` (setpriv needs no PAM, unlike su/runuser)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        raise PostgresError("running as root, PostgreSQL must run as an unprivileged user, and setpriv "
                            "(util-linux) is missing; install util-linux or run as a normal user")
    return ["setpriv", f"--reuid={RUN_AS}", f"--regid={pwd.getpwnam(RUN_AS).pw_gid}", "--clear-groups",
            "--reset-env", *argv]


def _chown_for_server(path: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(RUN_AS)
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _reachable(path: Path) -> bool:
    """Can the server user reach `path`? Always, unless we are root and a parent folder is private (/root)."""
    if os.geteuid() != 0:
        return True
    return subprocess.run(_as_server_user(["test", "-x", str(path)]), capture_output=True).returncode == 0


def server_home() -> tuple[Path, Path]:
    """(binaries, data parent) as the server user sees them. Normally .cache/postgres/install and
    .state/postgres; when root runs a checkout that `nobody` cannot reach (under /root, or pytest's
    private tmp), both go to /var/tmp/flightpipe-pg-<hash of the state folder> instead, once."""
    binaries = fetch()
    PG_DIR.mkdir(parents=True, exist_ok=True)
    if _reachable(binaries / "bin" / "postgres") and _reachable(PG_DIR):
        return binaries, PG_DIR
    home = Path("/var/tmp") / f"flightpipe-pg-{hashlib.sha256(str(PG_DIR).encode()).hexdigest()[:12]}"
    home.mkdir(mode=0o755, exist_ok=True)
    home.chmod(0o755)
    copy, stamp = home / "install", home / "install.pom-sha256"
    if not stamp.exists() or stamp.read_text().strip() != _stamp():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(binaries, copy, symlinks=True)
        stamp.write_text(_stamp())
    (PG_DIR / "location").write_text(f"{home}\n")  # where `make clean` finds it
    say(f"{RUN_AS} cannot reach {PG_DIR}: PostgreSQL runs from {home} instead")
    return copy, home / "postgres"


def remove_data() -> None:
    """Forget the database (`make clean`): the data folder, wherever server_home() put it."""
    stop()
    pointer = PG_DIR / "location"
    if pointer.exists():
        shutil.rmtree(Path(pointer.read_text().strip()), ignore_errors=True)
    shutil.rmtree(PG_DIR, ignore_errors=True)


def _read_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if processes.alive(pid) else None


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ready(url: str, timeout: float = 2.0) -> str | None:
    """None when the server accepts a connection and answers a query, else the reason it does not."""
    import psycopg
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _initdb(binaries: Path, pg_dir: Path) -> None:
    data = pg_dir / "data"
    if (data / "PG_VERSION").exists():
        return
    say("initdb (first start)")
    if data.exists():
        shutil.rmtree(data)  # a half-written data folder from an interrupted first start
    data.mkdir(parents=True, mode=0o700)
    _chown_for_server(pg_dir)
    proc = subprocess.run(_as_server_user([str(binaries / "bin" / "initdb"), "-D", str(data), "-U", SUPERUSER,
                                           "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise PostgresError(f"initdb failed:\n{(proc.stdout + proc.stderr).strip()[-2000:]}")


def start(cfg: PostgresConfig, start_timeout_s: float = 90) -> str:
    """Start the native server (unless DATABASE_URL is set), wait until it answers; returns the URL."""
    if cfg.external:
        say("DATABASE_URL is set: using that PostgreSQL server, starting none")
        return cfg.url
    if _read_pid():
        say(f"postgres already running (pid {_read_pid()})")
        return cfg.url
    if port_open(cfg.port):
        raise PostgresError(f"port {cfg.port} is already in use, so PostgreSQL cannot bind it. Stop that process "
                            f"(`ss -ltnp 'sport = :{cfg.port}'`), choose another POSTGRES_PORT, or point "
                            "DATABASE_URL at that server.")
    binaries, pg_dir = server_home()
    pg_dir.mkdir(parents=True, exist_ok=True)
    _initdb(binaries, pg_dir)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    # Unix sockets off: the default folder (/tmp) is shared by every checkout on the machine; TCP on loopback only.
    argv = _as_server_user([str(binaries / "bin" / "postgres"), "-D", str(pg_dir / "data"), "-p", str(cfg.port),
                            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                            "-c", "max_connections=50", "-c", "shared_buffers=64MB",
                            "-c", "fsync=on", "-c", "synchronous_commit=on"])
    with open(LOG, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=pg_dir, start_new_session=True)
    PID_FILE.write_text(str(proc.pid))
    say(f"postgres starting (pid {proc.pid}, log {LOG.relative_to(ROOT) if LOG.is_relative_to(ROOT) else LOG})")
    admin_url = f"postgresql://{SUPERUSER}@127.0.0.1:{cfg.port}/postgres"
    deadline = time.monotonic() + start_timeout_s
    reason = "not started"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            PID_FILE.unlink(missing_ok=True)
            raise PostgresError(f"PostgreSQL exited during start-up. Last lines of {LOG}:\n{processes.log_tail(LOG)}")
        reason = ready(admin_url) if port_open(cfg.port) else "port not open yet"
        if reason is None:
            _create_database(admin_url)
            return cfg.url
        time.sleep(0.3)
    stop()
    raise PostgresError(f"PostgreSQL did not accept connections within {start_timeout_s:.0f}s ({reason}). "
                        f"Last lines of {LOG}:\n{processes.log_tail(LOG)}")


def _create_database(admin_url: str) -> None:
    import psycopg
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def server_pids(pid: int | None = None) -> list[int]:
    """The postmaster and its children (each child is a process-group leader of its own: PostgreSQL
    calls setsid() in every child, so the postmaster's group alone does not find them)."""
    pid = pid or _read_pid()
    if pid is None:
        return []
    return processes.with_children(pid)


def stop(kill: bool = False, timeout: float = 30.0) -> bool:
    """Fast shutdown (SIGINT: clients disconnected, data flushed); kill=True is a crash (SIGKILL)."""
    pid = _read_pid()
    PID_FILE.unlink(missing_ok=True)
    if pid is None:
        return False
    victims = server_pids(pid)
    steps = ((signal.SIGKILL, 5.0),) if kill else ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0),
                                                    (signal.SIGKILL, 5.0))
    # With SIGKILL, the backends too: one that outlived the postmaster would keep the shared memory
    # attached and the next start would refuse to run.
    processes.stop_group(pid, steps, targets=lambda sig: server_pids(pid) if sig == signal.SIGKILL else [pid])
    # Until the dead postmaster is reaped its pid still answers kill(0), and a new server would take the
    # stale postmaster.pid for a running one and refuse to start.
    deadline = time.monotonic() + 10
    while not all(processes.gone(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def status(cfg: PostgresConfig) -> bool:
    pid = _read_pid()
    if not cfg.external:
        say(f"postgres  process: {'pid ' + str(pid) if pid else 'not started by this project'}")
    shown = redact_url(cfg.url)
    reason = ready(cfg.url)
    if reason is None:
        say(f"postgres  {shown}: accepting connections")
        say(f"DATABASE_URL={shown}")
        return True
    say(f"postgres  {shown}: NOT answering ({reason}) (make run)")
    return False


def redact_url(url: str) -> str:
    """The URL for printing: a password in it becomes *** (the user, host and database stay)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{creds}{at}{host}" if sep else url
