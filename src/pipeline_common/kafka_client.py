"""Kafka connection and security settings shared by the producer and the trigger.

Names follow kafka-python/Kafka (``bootstrap_servers``, ``security_protocol``,
``sasl_mechanism``) so ``client_kwargs()`` can be passed straight to
``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .settings import ConfigError, env_bool, env_str

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_TOPIC = "aviation-data"
DEFAULT_DLQ_TOPIC = "aviation-data-dlq"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# AWS_MSK_IAM signs with the default botocore credential chain (kafka-python's own mechanism).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={self.security_protocol!r} is not one of "
                              f"{', '.join(SECURITY_PROTOCOLS)}")
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and not self.sasl_mechanism:
            raise ConfigError(f"KAFKA_SASL_MECHANISM is required with KAFKA_SECURITY_PROTOCOL={self.security_protocol}")
        if self.sasl_mechanism and not uses_sasl:
            raise ConfigError("KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT/SASL_SSL")
        if self.sasl_mechanism and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
                self.sasl_plain_username and self.sasl_plain_password):
            raise ConfigError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required for {self.sasl_mechanism}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together (mutual TLS)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "KafkaSettings":
        """Values passed in ``overrides`` win over the environment."""
        values = dict(
            bootstrap_servers=env_str("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP, env=env),
            security_protocol=env_str("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", env=env).upper(),
            sasl_mechanism=(env_str("KAFKA_SASL_MECHANISM", None, env=env) or "").upper() or None,
            sasl_plain_username=env_str("KAFKA_SASL_USERNAME", None, env=env),
            sasl_plain_password=env_str("KAFKA_SASL_PASSWORD", None, env=env),
            ssl_cafile=env_str("KAFKA_SSL_CAFILE", None, env=env),
            ssl_certfile=env_str("KAFKA_SSL_CERTFILE", None, env=env),
            ssl_keyfile=env_str("KAFKA_SSL_KEYFILE", None, env=env),
            ssl_check_hostname=env_bool("KAFKA_SSL_CHECK_HOSTNAME", True, env=env),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

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
