"""`python -m trigger`: run Kafka -> Lambda event source mappings until SIGINT/SIGTERM.

One mapping from flags and variables, or every mapping declared in a CloudFormation template or a
mappings file (`--mappings infra/aws/template.yaml`, TRIGGER_MAPPINGS): each runs with its own
consumer group on its own thread of this process.

Every setting of trigger.mapping.TriggerConfig is a flag and a TRIGGER_* (or KAFKA_*) variable named
after AWS's parameter; a flag wins over the variable. First SIGINT/SIGTERM: finish the batches in flight, commit, leave the group.
A second one: stop retrying now (unfinished batches stay uncommitted and are re-delivered).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading

from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

from .declarations import load_mappings
from .mapping import TriggerConfig
from .metrics import CloudWatchPublisher
from .runner import BrokerUnavailable, Trigger

logger = logging.getLogger(__name__)

_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc mallopt() parameters (malloc.h)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trigger",
        description="Local equivalent of AWS Lambda's Kafka event source mapping: consumes a topic and invokes "
                    "a function with ESM-shaped batches, at least once, dead-lettering records that exhaust retries.",
        epilog="Each flag's help names its variable; the flag wins. KAFKA_SASL_PASSWORD is read from the "
               "environment only. AWS: AWS_ENDPOINT_URL, AWS_REGION/AWS_DEFAULT_REGION, credentials as usual. "
               "Logs: LOG_LEVEL, LOG_FORMAT=json|console. See src/trigger/README.md.")
    TriggerConfig.add_flags(p)
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                   help="with --mappings TEMPLATE: a template parameter value (repeatable); the others keep "
                        "their defaults")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--until-idle-s", type=float, metavar="S",
                   help="stop once nothing new arrived for S seconds and everything is handled (drain and exit)")
    return p


def _return_freed_memory_promptly() -> None:
    """glibc keeps the memory of big short-lived buffers (invoke payloads of up to 6 MB, fetch
    responses) in per-thread arenas and raises its mmap threshold after freeing each one, so the
    trigger's resident memory would stay near its worst moment. A fixed mmap threshold hands such
    buffers back to the OS when they are freed, and two arenas are enough for one consumer thread
    and a few invoke workers (-25 MB peak RSS with 10,000-record batches, no measurable CPU cost)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        logger.debug("not glibc: allocator left as it is")
        return
    libc.mallopt(_M_ARENA_MAX, 2)
    libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


# Settings of the process rather than of one mapping: allowed next to --mappings.
_PROCESS_SETTINGS = {"mappings", "metrics", "metrics_namespace", "metrics_interval_s"}


def _configs(args) -> list[TriggerConfig]:
    config = TriggerConfig.from_args(args)
    if not config.mappings:
        return [config]
    flagged = [name for name, _ in TriggerConfig.settings()
               if name not in _PROCESS_SETTINGS and getattr(args, name, None) is not None]
    if flagged:
        raise ConfigError(f"--mappings declares the mappings; drop --{flagged[0].replace('_', '-')} "
                          "(use --parameter for template parameters)")
    parameters = {}
    for pair in args.parameter:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--parameter {pair!r} is not KEY=VALUE")
        parameters[key] = value
    return load_mappings(config.mappings, parameters)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    _return_freed_memory_promptly()
    try:
        configs = _configs(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    triggers = [Trigger(config) for config in configs]
    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():
            logger.warning("second %s: giving up on batches still retrying", signal.Signals(signum).name)
            for trigger in triggers:
                trigger.abort()
        else:
            logger.info("%s: finishing the batches in flight, then committing and leaving the group",
                        signal.Signals(signum).name)
            stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    first = configs[0]
    publisher = (CloudWatchPublisher(triggers, namespace=first.metrics_namespace,
                                     interval_s=first.metrics_interval_s).start() if first.metrics else None)
    failures: list[BaseException] = []

    def run(trigger: Trigger) -> None:
        try:
            trigger.run(stop_event=stop, duration=args.duration, until_idle_s=args.until_idle_s)
        except BaseException as exc:  # noqa: BLE001 - reported below; the other mappings stop too
            failures.append(exc)
            stop.set()

    if len(triggers) == 1:
        run(triggers[0])
    else:
        threads = [threading.Thread(target=run, args=(t,), name=f"mapping-{t.config.label}") for t in triggers]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    if publisher is not None:
        publisher.stop()
    for exc in failures:
        if isinstance(exc, BrokerUnavailable):
            logger.error("%s", exc)
            return 1
        raise exc
    workers = [t for t in threading.enumerate() if t.name.startswith("trigger-invoke")]
    for t in workers:
        t.join(timeout=1.0)
    if any(t.is_alive() for t in workers):
        # A worker is still blocked in an HTTP call whose result no longer matters (its batch was
        # not committed): do not let interpreter shutdown wait for the read timeout.
        logging.shutdown()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
