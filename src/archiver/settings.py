"""The archiver's settings: the lake's (LAKE_*), the shared Kafka ones, and its own ARCHIVER_* few."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from lakehouse.settings import LakeSettings
from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.settings import Settings, setting
from pipeline_common.shared_settings import KAFKA_TOPIC


@dataclass(frozen=True)
class ArchiverConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "ARCHIVER_"
    USED_BY: ClassVar[str] = "archiver"

    topic: str = KAFKA_TOPIC.field()
    status_interval_s: float = setting("ARCHIVER_STATUS_INTERVAL_S", 10.0, minimum=0.1, maximum=3600, unit="s",
                                       help="how often the archiver logs its status line")
    retry_max_s: float = setting("ARCHIVER_RETRY_MAX_S", 30.0, minimum=0.1, maximum=600, unit="s",
                                 help="longest wait between two tries of a commit while S3 or the catalog is down")
    stop_timeout_s: float = setting("ARCHIVER_STOP_TIMEOUT_S", 60.0, minimum=0, maximum=3600, unit="s",
                                    help="on SIGTERM, how long the last commit may keep retrying (what is not "
                                         "committed is read again at the next start)")
    connect_timeout_s: float = setting("ARCHIVER_CONNECT_TIMEOUT_S", 120.0, minimum=0, unit="s",
                                       help="how long to keep retrying an unreachable broker at start")
    lake: LakeSettings = field(default_factory=LakeSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
