"""The producer's one configuration object, built from PRODUCER_*/OPENSKY_*/KAFKA_* variables.

A value passed in code (or on the command line) wins over the environment; a malformed value
fails at start-up with a message naming the variable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from pipeline_common.kafka_client import DEFAULT_TOPIC, KafkaSettings
from pipeline_common.settings import ConfigError, env_float, env_int, env_str

from .credit_pacing import BudgetTooSmall, check_requested_interval, default_daily_credits
from .opensky import OpenSkySettings

SOURCE_CHOICES = ("opensky", "synthetic", "replay")
_ICAO24 = re.compile(r"[0-9a-f]{6}")


def parse_bbox(text: str | None, name: str = "PRODUCER_BBOX") -> tuple[float, float, float, float] | None:
    """'lamin,lomin,lamax,lomax' (degrees) -> tuple; validated like OpenSky validates it."""
    if text is None or not text.strip():
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{name}={text!r} must be four numbers: lamin,lomin,lamax,lomax") from None
    if len(values) != 4:
        raise ConfigError(f"{name}={text!r} must be four numbers: lamin,lomin,lamax,lomax")
    return check_bbox(values, name)


def check_bbox(bbox, name: str = "PRODUCER_BBOX") -> tuple[float, float, float, float]:
    lamin, lomin, lamax, lomax = (float(v) for v in bbox)
    if not (-90 <= lamin < lamax <= 90 and -180 <= lomin < lomax <= 180):
        raise ConfigError(f"{name}={bbox!r}: need -90 <= lamin < lamax <= 90 and -180 <= lomin < lomax <= 180")
    return lamin, lomin, lamax, lomax


def parse_icao24(text: str | None, name: str = "PRODUCER_ICAO24") -> tuple[str, ...]:
    if text is None:
        return ()
    return check_icao24([part for part in re.split(r"[,\s]+", text) if part], name)


def check_icao24(codes, name: str = "PRODUCER_ICAO24") -> tuple[str, ...]:
    out = tuple(code.strip().lower() for code in codes)
    bad = [code for code in out if not _ICAO24.fullmatch(code)]
    if bad:
        raise ConfigError(f"{name}: {', '.join(bad)} is not a 6-hex-digit ICAO 24-bit address")
    return out


@dataclass(frozen=True)
class ProducerConfig:
    source: str = "synthetic"
    topic: str = DEFAULT_TOPIC
    interval_s: float | None = None       # None: OpenSky data resolution, or 1 s for synthetic
    duration_s: float | None = None       # None: run until stopped
    max_ticks: int | None = None
    aircraft: int = 8000
    seed: int = 42
    rate: float | None = None             # synthetic: exact positions/s instead of whole-fleet ticks
    start_time: float | None = None       # synthetic simulated clock start (exports); None: now
    bbox: tuple[float, float, float, float] | None = None
    icao24: tuple[str, ...] = ()
    export_csv: str | None = None
    replay: str | None = None
    batch_rows: int = 7000
    batch_delay_s: float = 1.0
    connect_timeout_s: float = 120.0
    opensky: OpenSkySettings = field(default_factory=OpenSkySettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def __post_init__(self) -> None:
        if self.source not in SOURCE_CHOICES:
            raise ConfigError(f"PRODUCER_SOURCE={self.source!r} is not one of {', '.join(SOURCE_CHOICES)}")
        if self.source == "replay" and not self.replay:
            raise ConfigError("source replay needs a CSV file: --replay PATH (PRODUCER_REPLAY)")
        if self.replay and self.source != "replay":
            raise ConfigError(f"--replay is only used with --source replay (got --source {self.source}); "
                              "with make: make produce SOURCE=replay ARGS='--replay PATH'")
        if self.rate is not None and self.source != "synthetic":
            raise ConfigError("PRODUCER_RATE (--rate) needs --source synthetic")
        if (self.bbox or self.icao24) and self.source != "opensky":
            raise ConfigError("--bbox/--icao24 filter OpenSky requests; they need --source opensky")
        if self.bbox is not None:
            object.__setattr__(self, "bbox", check_bbox(self.bbox))
        object.__setattr__(self, "icao24", check_icao24(self.icao24))
        for name, value in (("PRODUCER_INTERVAL", self.interval_s), ("PRODUCER_DURATION", self.duration_s),
                            ("PRODUCER_RATE", self.rate)):
            if value is not None and value <= 0:
                raise ConfigError(f"{name}={value} must be > 0")
        for name, value in (("PRODUCER_BATCH_DELAY", self.batch_delay_s),
                            ("PRODUCER_CONNECT_TIMEOUT", self.connect_timeout_s)):
            if value < 0:
                raise ConfigError(f"{name}={value} must be >= 0")
        for name, value in (("PRODUCER_AIRCRAFT", self.aircraft), ("PRODUCER_BATCH_ROWS", self.batch_rows)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        if self.max_ticks is not None and self.max_ticks < 1:
            raise ConfigError(f"PRODUCER_MAX_TICKS={self.max_ticks} must be >= 1")
        if self.source == "opensky" and self.interval_s is not None:
            try:
                check_requested_interval(
                    max(self.interval_s, self.opensky.resolution_s), bbox=self.bbox,
                    daily_credits=self.opensky.daily_credits or default_daily_credits(self.opensky.authenticated),
                    budget_fraction=self.opensky.budget_fraction, max_polls=self.max_ticks,
                    duration_s=self.duration_s)
            except BudgetTooSmall as exc:
                raise ConfigError(str(exc)) from None
        if self.export_csv and self.source == "synthetic" and not (self.max_ticks or self.duration_s):
            raise ConfigError("--export-csv of the synthetic source needs --ticks N or --duration S "
                              "(it runs on a simulated clock and would never end)")

    @property
    def effective_interval_s(self) -> float:
        """Seconds between polls/ticks. OpenSky is never polled faster than its data changes."""
        if self.source == "opensky":
            return max(self.interval_s or 0.0, self.opensky.resolution_s)
        if self.source == "replay":
            return self.batch_delay_s
        return self.interval_s or 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "ProducerConfig":
        """Values in ``overrides`` that are not None win over the environment."""
        opensky_overrides = overrides.pop("opensky", None)
        kafka_overrides = overrides.pop("kafka", None)
        values = dict(
            source=env_str("PRODUCER_SOURCE", "synthetic", env=env, choices=SOURCE_CHOICES),
            topic=env_str("KAFKA_TOPIC", DEFAULT_TOPIC, env=env),
            interval_s=env_float("PRODUCER_INTERVAL", None, env=env),
            duration_s=env_float("PRODUCER_DURATION", None, env=env),
            max_ticks=env_int("PRODUCER_MAX_TICKS", None, env=env, minimum=1),
            aircraft=env_int("PRODUCER_AIRCRAFT", 8000, env=env, minimum=1),
            seed=env_int("PRODUCER_SEED", 42, env=env),
            rate=env_float("PRODUCER_RATE", None, env=env),
            start_time=env_float("PRODUCER_START_TIME", None, env=env),
            bbox=parse_bbox(env_str("PRODUCER_BBOX", None, env=env)),
            icao24=parse_icao24(env_str("PRODUCER_ICAO24", None, env=env)),
            export_csv=env_str("PRODUCER_EXPORT_CSV", None, env=env),
            replay=env_str("PRODUCER_REPLAY", None, env=env),
            batch_rows=env_int("PRODUCER_BATCH_ROWS", 7000, env=env, minimum=1),
            batch_delay_s=env_float("PRODUCER_BATCH_DELAY", 1.0, env=env, minimum=0.0),
            connect_timeout_s=env_float("PRODUCER_CONNECT_TIMEOUT", 120.0, env=env, minimum=0.0),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["opensky"] = (opensky_overrides if isinstance(opensky_overrides, OpenSkySettings)
                             else OpenSkySettings.from_env(env, **(opensky_overrides or {})))
        values["kafka"] = (kafka_overrides if isinstance(kafka_overrides, KafkaSettings)
                           else KafkaSettings.from_env(env, **(kafka_overrides or {})))
        return cls(**values)

