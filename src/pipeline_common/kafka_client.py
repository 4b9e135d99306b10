"""Kafka connection and security settings shared by the producer, the trigger and the tracker, the one
broker-connect retry loop they use, and the one stuck-rebalance watchdog of the two consumers.

Names follow kafka-python/Kafka (``bootstrap_servers``, ``security_protocol``,
``sasl_mechanism``) so ``client_kwargs()`` can be passed straight to
``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, ClassVar, TypeVar

from kafka.errors import KafkaError
from kafka.structs import MemberState

from .backoff import backoff_delay
from .settings import ConfigError, Settings, setting
from .shared_settings import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC  # noqa: F401 (importers know them from here)

logger = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "localhost:9092"
_MAX_CONNECT_DELAY_S = 30.0
Client = TypeVar("Client")

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# AWS_MSK_IAM signs with the default botocore credential chain (kafka-python's own mechanism).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM")


@dataclass(frozen=True)
class KafkaSettings(Settings):
    USED_BY: ClassVar[str] = "all Kafka clients"

    bootstrap_servers: str = setting("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP,
                                     help="brokers, comma-separated host:port")
    security_protocol: str = setting("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", choices=SECURITY_PROTOCOLS,
                                     parse=str.upper, help="how clients talk to the brokers")
    sasl_mechanism: str | None = setting("KAFKA_SASL_MECHANISM", None, choices=SASL_MECHANISMS, parse=str.upper,
                                         help="SASL mechanism (`AWS_MSK_IAM` signs with the default AWS credentials)")
    sasl_plain_username: str | None = setting("KAFKA_SASL_USERNAME", None, help="SASL PLAIN/SCRAM user")
    sasl_plain_password: str | None = setting("KAFKA_SASL_PASSWORD", None, secret=True,
                                              help="SASL PLAIN/SCRAM password")
    ssl_cafile: str | None = setting("KAFKA_SSL_CAFILE", None, help="CA bundle (PEM) that signed the brokers")
    ssl_certfile: str | None = setting("KAFKA_SSL_CERTFILE", None, help="client certificate (PEM), mutual TLS")
    ssl_keyfile: str | None = setting("KAFKA_SSL_KEYFILE", None, help="client key (PEM), mutual TLS")
    ssl_check_hostname: bool = setting("KAFKA_SSL_CHECK_HOSTNAME", True, help="check the broker's name in its certificate")

    def check(self) -> None:
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and not self.sasl_mechanism:
            raise ConfigError(f"KAFKA_SASL_MECHANISM is required with KAFKA_SECURITY_PROTOCOL={self.security_protocol}")
        if self.sasl_mechanism and not uses_sasl:
            raise ConfigError("KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT/SASL_SSL")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
                self.sasl_plain_username and self.sasl_plain_password):
            raise ConfigError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required for {self.sasl_mechanism}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together (mutual TLS)")

    def client_kwargs(self) -> dict:
        """Keyword arguments for any kafka-python client; only what is set."""
        kwargs: dict = {"bootstrap_servers": self.bootstrap_servers.split(","),
                        "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key):
                    kwargs[key] = getattr(self, key)
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_plain_username:
                kwargs["sasl_plain_username"] = self.sasl_plain_username
                kwargs["sasl_plain_password"] = self.sasl_plain_password
        return kwargs

    def __repr__(self) -> str:  # never print the SASL password
        return (f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, "
                f"security_protocol={self.security_protocol!r}, sasl_mechanism={self.sasl_mechanism!r}, "
                f"sasl_plain_username={self.sasl_plain_username!r}, sasl_plain_password={'***' if self.sasl_plain_password else None})")


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached within the connect timeout."""


def connect_with_retry(make: Callable[[float], Client], settings: KafkaSettings, *, timeout_s: float,
                       stop: threading.Event | None = None, topic: str | None = None,
                       first_delay_s: float = 1.0,
                       on_error: Callable[[KafkaError], None] | None = None) -> Client | None:
    """``make(bootstrap_timeout_s)`` -> a kafka-python client, retried while the broker cannot be
    reached (starting, restarting, or a network hiccup) for up to ``timeout_s``; one warning per
    try, and ``on_error(exc)`` (a health page's "last error") for each failed one. Returns None when
    ``stop`` is set meanwhile; raises BrokerUnavailable at the deadline."""
    deadline = time.monotonic() + timeout_s
    # A short bootstrap timeout leaves room for retries (and a log line each) within the deadline,
    # and notices a stop request promptly.
    bootstrap_timeout_s = min(10.0, max(timeout_s / 3, 0.5))
    attempt = 0
    while True:
        attempt += 1
        try:
            return make(bootstrap_timeout_s)
        except KafkaError as exc:
            if on_error is not None:
                on_error(exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"Kafka broker at {settings.bootstrap_servers} is not reachable after {attempt} "
                    f"attempt(s) in {timeout_s:.0f}s: {type(exc).__name__}: {exc}. Is it running "
                    "(make run; make status) and is KAFKA_BOOTSTRAP_SERVERS right?") from None
            # Without jitter (the ceiling itself: 1, 2, 4 ... 30 s): one process waits for one broker.
            wait = min(backoff_delay(attempt, first_delay_s, _MAX_CONNECT_DELAY_S, rand=lambda: 1.0), remaining)
            logger.warning("Kafka broker at %s not reachable (%s); retrying in %.0f s",
                           settings.bootstrap_servers, type(exc).__name__, wait,
                           extra={"topic": topic, "attempt": attempt})
            if stop is not None:
                if stop.wait(wait):
                    return None
            else:
                time.sleep(wait)


class RebalanceWatchdog:
    """A safety net for kafka-python 3.0.12, whose group join can hang for good (seen when topic
    metadata arrives just after the first join: the leader assigns nothing, rejoins, the SyncGroup
    answer is never applied and heartbeats stop; the closest upstream reports are
    dpkp/kafka-python#3131/#3132). `stuck()` says when the consumer has been rebalancing for longer
    than `stuck_after_s`; the caller then closes it and subscribes a new one (`reset()` after)."""

    def __init__(self, stuck_after_s: float) -> None:
        self.stuck_after_s = stuck_after_s
        self.since: float | None = None  # when the current rebalance was first seen; None while stable

    def stuck(self, consumer, now: float) -> bool:
        state = getattr(getattr(consumer, "_coordinator", None), "state", None)
        if state is None or state == MemberState.STABLE:
            self.since = None
            return False
        if self.since is None:
            self.since = now
            return False
        return now - self.since > self.stuck_after_s

    def reset(self) -> None:
        self.since = None

    def retire(self, consumer, group_id: str, topic: str | None = None) -> None:
        """Log the stuck rebalance and close the stuck consumer (the caller subscribes a new one)."""
        logger.error("consumer group %s has not finished rebalancing in %.0f s; recreating the consumer "
                     "(nothing is in flight, so nothing is lost)", group_id, self.stuck_after_s,
                     extra={"topic": topic, "group": group_id})
        try:
            consumer.close(autocommit=False)
        except Exception:  # noqa: BLE001 - a broken consumer may fail to close; the new one matters
            logger.warning("closing the stuck consumer failed", exc_info=True)
        self.since = None
