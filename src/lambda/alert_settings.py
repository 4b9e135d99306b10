"""flight-alerts' configuration: one frozen object read from the environment once per container.

Variables (defaults in brackets), besides flight-processor's SNS_TOPIC_ARN (here: the FlightAlerts
topic), METRICS_*, PUBLISH_* and LOG_LEVEL, read by the same FunctionSettings:
  ALERTS_TABLE         [FlightAlertState] DynamoDB table of per-aircraft alert state
  GEOFENCES_BUCKET     required; S3 bucket holding the geofences
  GEOFENCES_KEY        [geofences.geojson] object key of the GeoJSON FeatureCollection
  GEOFENCE_REFRESH_S   [30] how often a running function checks the object for a new version (0..3600)
  ALERT_WATCHLIST      [empty] comma-separated icao24=<hex> and callsign=<pattern> entries
  WATCH_GAP_S          [1800] unseen for longer than this, an aircraft's next position is a new appearance
  ALERT_STATE_TTL_S    [86400] state of aircraft not seen for this long expires (DynamoDB TTL)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from alert_rules import Watchlist, WatchlistError
from flight_settings import FunctionConfigError, FunctionSettings, _int, _raw

DEFAULT_TABLE = "FlightAlertState"
DEFAULT_KEY = "geofences.geojson"
DEFAULT_FUNCTION_NAME = "flight-alerts"


@dataclass(frozen=True)
class AlertSettings:
    function: FunctionSettings
    geofences_bucket: str
    table: str = DEFAULT_TABLE
    geofences_key: str = DEFAULT_KEY
    geofence_refresh_s: int = 30
    watchlist: Watchlist = Watchlist()
    watch_gap_s: int = 1800
    state_ttl_s: int = 86400

    @property
    def fifo(self) -> bool:
        return self.function.sns_topic_arn.endswith(".fifo")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "AlertSettings":
        env = os.environ if env is None else env
        function = overrides.pop("function", None)
        if function is None:
            named = _raw(env, "AWS_LAMBDA_FUNCTION_NAME") or _raw(env, "FUNCTION_NAME")
            function = FunctionSettings.from_env(env, function_name=None if named else DEFAULT_FUNCTION_NAME)
        bucket = _raw(env, "GEOFENCES_BUCKET")
        if overrides.get("geofences_bucket") is None and bucket is None:
            raise FunctionConfigError("GEOFENCES_BUCKET is required but not set")
        try:
            watchlist = Watchlist.parse(_raw(env, "ALERT_WATCHLIST"))
        except WatchlistError as exc:
            raise FunctionConfigError(f"ALERT_WATCHLIST: {exc}") from None
        values = dict(
            function=function, geofences_bucket=bucket, watchlist=watchlist,
            table=_raw(env, "ALERTS_TABLE") or DEFAULT_TABLE,
            geofences_key=_raw(env, "GEOFENCES_KEY") or DEFAULT_KEY,
            geofence_refresh_s=_int(env, "GEOFENCE_REFRESH_S", 30, 0, 3600),
            watch_gap_s=_int(env, "WATCH_GAP_S", 1800, 60, 7 * 86400),
            state_ttl_s=_int(env, "ALERT_STATE_TTL_S", 86400, 3600, 365 * 86400),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
