"""The producer's one configuration object, built from PRODUCER_*/OPENSKY_*/KAFKA_* variables (or flags).

A value passed in code (or on the command line) wins over the environment; a malformed value
fails at start-up with a message naming the variable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.settings import ConfigError, Settings, setting
from pipeline_common.shared_settings import KAFKA_TOPIC
from pipeline_common.state_codec import FORMATS

from .credit_pacing import BudgetTooSmall, check_requested_interval, default_daily_credits
from .opensky import OpenSkySettings

SOURCE_CHOICES = ("opensky", "synthetic", "replay")
_ICAO24 = re.compile(r"[0-9a-f]{6}")
SYNTHETIC_INTERVAL_S = 10.0  # like OpenSky's resolution for anonymous users (the producer's default there)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'lamin,lomin,lamax,lomax' (degrees) -> tuple; validated like OpenSky validates it."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError("must be four numbers: lamin,lomin,lamax,lomax") from None
    if len(values) != 4:
        raise ValueError("must be four numbers: lamin,lomin,lamax,lomax")
    return _bbox_in_range(values)


def _bbox_in_range(bbox) -> tuple[float, float, float, float]:
    lamin, lomin, lamax, lomax = (float(v) for v in bbox)
    if not (-90 <= lamin < lamax <= 90 and -180 <= lomin < lomax <= 180):
        raise ValueError("needs -90 <= lamin < lamax <= 90 and -180 <= lomin < lomax <= 180")
    return lamin, lomin, lamax, lomax


def parse_icao24(text: str) -> tuple[str, ...]:
    """'3c6444, 4B1815' -> ('3c6444', '4b1815')."""
    return _icao24_valid([part for part in re.split(r"[,\s]+", text) if part])


def _icao24_valid(codes) -> tuple[str, ...]:
    out = tuple(code.strip().lower() for code in codes)
    bad = [code for code in out if not _ICAO24.fullmatch(code)]
    if bad:
        raise ValueError(f"has {', '.join(bad)}: not a 6-hex-digit ICAO 24-bit address")
    return out


@dataclass(frozen=True)
class ProducerConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "PRODUCER_"
    USED_BY: ClassVar[str] = "producer"

    source: str = setting("PRODUCER_SOURCE", "synthetic", choices=SOURCE_CHOICES, help="where states come from")
    topic: str = KAFKA_TOPIC.field()
    interval_s: float | None = setting(
        "PRODUCER_INTERVAL", None, greater_than=0, metavar="S",
        doc_default="OpenSky: paced by the credit budget, never under 10 s anonymous / 5 s authenticated; synthetic: 10 s",
        help="seconds between polls/ticks")
    duration_s: float | None = setting("PRODUCER_DURATION", None, greater_than=0, metavar="S",
                                       doc_default="run until stopped", help="stop after S seconds")
    max_ticks: int | None = setting("PRODUCER_MAX_TICKS", None, minimum=1, flag=("--max-ticks", "--ticks"),
                                    metavar="N", doc_default="run until stopped", help="stop after N polls/ticks/batches")
    # 5,000 aircraft every 10 s (OpenSky's anonymous resolution) = 500 positions/s, half of what the whole
    # typical session (both mappings, printers, tracker, archiver) sustains for an hour on 2 cores (1,000/s:
    # docs/SOAK.md), so a machine 2x slower keeps up too; the planet is one flag away: --aircraft 10000
    # (1,000/s), and OpenSky's authenticated resolution --interval 5 (2,000/s).
    aircraft: int = setting("PRODUCER_AIRCRAFT", 5000, minimum=1, metavar="N", help="synthetic fleet size")
    seed: int = setting("PRODUCER_SEED", 42, help="synthetic random seed")
    rate: float | None = setting("PRODUCER_RATE", None, greater_than=0, metavar="R",
                                 help="synthetic: exactly R positions/s in total instead of whole-fleet ticks")
    start_time: float | None = setting("PRODUCER_START_TIME", None, metavar="EPOCH", doc_default="now",
                                       help="synthetic or replay: simulated start time; ticks stamped start + n x interval (exports, and a past day produced to Kafka at the wall-clock interval)")
    bbox: tuple[float, float, float, float] | None = setting(
        "PRODUCER_BBOX", None, parse=parse_bbox, metavar="LAMIN,LOMIN,LAMAX,LOMAX",
        help="OpenSky: only this bounding box, in degrees")
    icao24: tuple[str, ...] = setting("PRODUCER_ICAO24", (), parse=parse_icao24, metavar="HEX[,HEX]",
                                      flag_action="extend",
                                      help="OpenSky: only these transponders (comma list; the flag repeats)")
    export_csv: str | None = setting("PRODUCER_EXPORT_CSV", None, metavar="PATH",
                                     help="write states to a CSV file instead of Kafka")
    replay: str | None = setting("PRODUCER_REPLAY", None, metavar="PATH", help="CSV file to replay (source replay)")
    batch_rows: int = setting("PRODUCER_BATCH_ROWS", 7000, minimum=1, metavar="N", help="replay: rows per micro-batch")
    batch_delay_s: float = setting("PRODUCER_BATCH_DELAY", 1.0, minimum=0.0, unit="s", metavar="S",
                                   help="replay: seconds between micro-batches")
    connect_timeout_s: float = setting("PRODUCER_CONNECT_TIMEOUT", 120.0, minimum=0.0, unit="s", metavar="S",
                                       help="keep retrying an unreachable broker this long at start")
    value_format: str = setting("PRODUCER_FORMAT", "json", choices=tuple(FORMATS), flag="--format",
                                help="wire format of each Kafka record (a Protobuf record says so in its content-type "
                                     "header; JSON ones carry none)")
    opensky: OpenSkySettings = field(default_factory=OpenSkySettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    def check(self) -> None:
        if self.source == "replay" and not self.replay:
            raise ConfigError("source replay needs a CSV file: --replay PATH (PRODUCER_REPLAY)")
        if self.replay and self.source != "replay":
            raise ConfigError(f"--replay is only used with --source replay (got --source {self.source}); "
                              "with make: make produce SOURCE=replay ARGS='--replay PATH'")
        if self.rate is not None and self.source != "synthetic":
            raise ConfigError("PRODUCER_RATE (--rate) needs --source synthetic")
        if self.start_time is not None and self.source == "opensky":
            raise ConfigError("PRODUCER_START_TIME (--start-time) sets the simulated clock of the synthetic and "
                              "replay sources; OpenSky's states carry its own current time")
        if (self.bbox or self.icao24) and self.source != "opensky":
            raise ConfigError("--bbox/--icao24 filter OpenSky requests; they need --source opensky")
        # Values passed in code are checked (and normalised) as the variables are.
        try:
            if self.bbox is not None:
                object.__setattr__(self, "bbox", _bbox_in_range(self.bbox))
        except ValueError as exc:
            raise ConfigError(f"PRODUCER_BBOX={self.bbox!r} {exc}") from None
        try:
            object.__setattr__(self, "icao24", _icao24_valid(self.icao24))
        except ValueError as exc:
            raise ConfigError(f"PRODUCER_ICAO24 {exc}") from None
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
        return self.interval_s or SYNTHETIC_INTERVAL_S
