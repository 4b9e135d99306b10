"""The typical session (what `make up` runs), as processes: each long-running `make` target that exists.

A part's command is what `make -n <target>` prints as its last line, so the soak runs exactly what
a user runs (the Makefile's own defaults and arguments), and a part that does not exist yet (no
such target on this branch) is simply not part of the session.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class PartSpec:
    name: str
    target: str
    required: bool = False
    # The notification and alert printers write data (a line per message) on stdout, their log on stderr.
    stdout_is_data: bool = False
    # The printers stop on Ctrl-C (SIGINT); the components stop cleanly on SIGTERM.
    stop_signal: int = signal.SIGTERM


# Consumers first, so the producer's first records find them in their groups; the producer last.
SESSION = (
    PartSpec("trigger", "trigger", required=True),
    PartSpec("alerts trigger", "alerts-trigger"),
    PartSpec("tracker", "tracker"),
    PartSpec("archiver", "archiver"),
    PartSpec("notifications", "notifications", stdout_is_data=True, stop_signal=signal.SIGINT),
    PartSpec("alerts printer", "alerts", stdout_is_data=True, stop_signal=signal.SIGINT),
    PartSpec("producer", "produce", required=True),
)


class MissingPart(RuntimeError):
    """A part the session cannot run without has no make target."""


def make_command(target: str, args: str = "", env: dict | None = None) -> list[str] | None:
    """The command `make <target>` runs (its recipe's last line), or None if there is no such target.
    ARGS is always given on the command line so the soak's own ARGS never leak into a part."""
    result = subprocess.run(["make", "-n", "--no-print-directory", target, f"ARGS={args}"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        if "No rule to make target" in result.stderr:
            return None
        raise RuntimeError(f"make -n {target} failed: {result.stderr.strip()}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return shlex.split(lines[-1]) if lines else None


class Part:
    """One running part: a subprocess with its log file."""

    def __init__(self, spec: PartSpec, argv: list[str], env: dict, log_dir: Path) -> None:
        self.spec = spec
        self.argv = argv
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{spec.name.replace(' ', '-')}.log"
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL if spec.stdout_is_data else log,
                                          stderr=log)
        self.pid = self._proc.pid
        self.started = time.monotonic()

    @property
    def name(self) -> str:
        return self.spec.name

    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def pids(self) -> list[int]:
        return [self.pid] if self.alive() else []

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.alive():
            self._proc.send_signal(self.spec.stop_signal)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) did not stop within %.0f s; killing it", self.name, self.pid, timeout)
                self._proc.kill()
                self._proc.wait(10)
        return self._proc.returncode

    def log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    # JSON logs: the soak reads the producer's and trigger's final counts from them.
    env.update({"LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def discover(part_args: dict[str, str], env: dict) -> list[tuple[PartSpec, list[str]]]:
    """The session's parts that exist on this branch, with their commands."""
    found = []
    for spec in SESSION:
        argv = make_command(spec.target, part_args.get(spec.name, ""), env)
        if argv is None:
            if spec.required:
                raise MissingPart(f"the session needs `make {spec.target}`, which this Makefile does not have")
            logger.info("no `make %s` here: the session runs without the %s", spec.target, spec.name)
            continue
        found.append((spec, argv))
    return found
