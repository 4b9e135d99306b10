"""The tracker's settings for the map's geofences and alerts feed (nested in TrackerConfig).

The fences' bucket, key and refresh, and the alerts topic, are the alerts side's own declarations
(flight_domain.alert_declarations), so the map reads exactly what flight-alerts reads and publishes to."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flight_domain.alert_declarations import ALERTS_TOPIC_NAME, GEOFENCE_REFRESH_S, GEOFENCES_BUCKET, GEOFENCES_KEY
from pipeline_common.settings import Settings, setting


@dataclass(frozen=True)
class TrackerAlertsSettings(Settings):
    ENV_PREFIX: ClassVar[str] = "TRACKER_"
    USED_BY: ClassVar[str] = "tracker (map: fences and alerts)"

    geofences_bucket: str = GEOFENCES_BUCKET.field()
    geofences_key: str = GEOFENCES_KEY.field()
    geofence_refresh_s: int = GEOFENCE_REFRESH_S.field()
    topic_name: str = ALERTS_TOPIC_NAME.field()
    feed: bool = setting("TRACKER_ALERTS_FEED", True,
                         help="subscribe a queue of the tracker's own to the alerts topic and show the alerts on "
                              "the map (false: no queue, `GET /alerts` says the feed is off)")
    queue_name: str = setting("TRACKER_ALERTS_QUEUE_NAME", "flight-tracker-alerts",
                              help="the tracker's SQS queue on the alerts topic (one per tracker: two trackers "
                                   "sharing it would each see part of the alerts)")
    queue_retention_s: int = setting("TRACKER_ALERTS_QUEUE_RETENTION_S", 300, minimum=60, maximum=1_209_600, unit="s",
                                     help="alerts older than this are dropped from the tracker's queue while it is "
                                          "not running")
    keep: int = setting("TRACKER_ALERTS_KEEP", 200, minimum=1, maximum=10_000,
                        help="most recent alerts the tracker keeps for `GET /alerts` and the map")
    retry_s: float = setting("TRACKER_ALERTS_RETRY_S", 30.0, minimum=1, maximum=3600, unit="s",
                             help="longest wait between two tries to reach the alerts topic when it is absent "
                                  "or AWS is unreachable")
