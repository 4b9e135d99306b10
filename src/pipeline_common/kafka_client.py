"""Kafka connection and security settings shared by the producer and the trigger.

Names follow kafka-python/Kafka (``bootstrap_servers``, ``security_protocol``,
``sasl_mechanism``) so ``client_kwargs()`` can be passed straight to
``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .settings import ConfigError, Settings, setting
from .shared_settings import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, KAFKA_DLQ_TOPIC, KAFKA_TOPIC  # noqa: F401 (re-exported)

DEFAULT_BOOTSTRAP = "localhost:9092"

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
