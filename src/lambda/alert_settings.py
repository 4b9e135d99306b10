"""flight-alerts' configuration: one frozen object read from the environment once per container.

Declared with pipeline_common.settings (shipped in the zip) like flight-processor's FunctionSettings,
which it contains for what both functions read: SNS_TOPIC_ARN (here the FlightAlerts topic; a
``.fifo`` ARN turns on deduplication ids), METRICS_*, PUBLISH_* and LOG_LEVEL.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

from flight_domain.alert_declarations import (ALERT_WATCHLIST, ALERTS_TABLE, GEOFENCE_REFRESH_S, GEOFENCES_BUCKET,
                                              GEOFENCES_KEY)
from flight_domain.alert_rules import Watchlist
from flight_settings import FunctionSettings
from pipeline_common.settings import ConfigError, Settings, setting

DEFAULT_FUNCTION_NAME = "flight-alerts"

# ALERT_WATCHLIST read as the function needs it: parsed. The deployer always passes it on (the
# declaration's default is the deployer's); the function on its own (tests, tools) reads an unset
# variable as no watchlist.
_WATCHLIST = dataclasses.replace(ALERT_WATCHLIST, default=Watchlist(), parse=Watchlist.parse,
                                 doc_default=f"{ALERT_WATCHLIST.default_text()} (from the deployer)")


@dataclass(frozen=True)
class AlertSettings(Settings):
    FLAGS: ClassVar[bool] = False  # a Lambda function has no command line
    USED_BY: ClassVar[str] = "flight-alerts function (the alerts deployer sets or passes it on)"

    function: FunctionSettings = field(default_factory=FunctionSettings)
    geofences_bucket: str = GEOFENCES_BUCKET.field()  # required here: the deployer always sets it
    table: str = ALERTS_TABLE.field()
    geofences_key: str = GEOFENCES_KEY.field()
    geofence_refresh_s: int = GEOFENCE_REFRESH_S.field()
    watchlist: Watchlist = _WATCHLIST.field()
    watch_gap_s: int = setting("WATCH_GAP_S", 1800, minimum=60, maximum=7 * 86400, unit="s",
                               help="unseen for longer than this, an aircraft's next position is a new "
                                    "appearance (WATCHLIST again)")
    state_ttl_s: int = setting("ALERT_STATE_TTL_S", 86400, minimum=3600, maximum=365 * 86400, unit="s",
                               help="alert state of aircraft not seen for this long expires (DynamoDB TTL)")
    state_refresh_s: int = setting("ALERT_STATE_REFRESH_S", 300, minimum=0, maximum=43200, unit="s",
                                   help="an aircraft whose alert state did not change has it rewritten (last "
                                        "seen, TTL) once per this much position time, each aircraft after "
                                        "between half and all of it (spread by icao24); 0: at every position")

    def check(self) -> None:
        if not self.geofences_bucket.strip():
            raise ConfigError("GEOFENCES_BUCKET is required but not set")
        if self.watch_gap_s > self.state_ttl_s:
            # The state that remembers an appearance would expire before its gap ends: an aircraft back
            # in between would be "first seen" and raise WATCHLIST earlier than WATCH_GAP_S says.
            raise ConfigError(f"WATCH_GAP_S={self.watch_gap_s} is longer than ALERT_STATE_TTL_S={self.state_ttl_s}: "
                              "the alert state would expire before an appearance ends; raise ALERT_STATE_TTL_S")
        if 2 * self.state_refresh_s > self.state_ttl_s:
            # Its TTL renewed only every ALERT_STATE_REFRESH_S of position time, the state of an aircraft in
            # flight could expire between two writes (sooner still when positions lag the wall clock).
            raise ConfigError(f"ALERT_STATE_REFRESH_S={self.state_refresh_s} is more than half of "
                              f"ALERT_STATE_TTL_S={self.state_ttl_s}: the state of an aircraft in flight could "
                              "expire between two writes; lower ALERT_STATE_REFRESH_S")

    @property
    def fifo(self) -> bool:
        return self.function.sns_topic_arn.endswith(".fifo")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "AlertSettings":
        env = os.environ if env is None else env
        named = any((env.get(v) or "").strip() for v in ("AWS_LAMBDA_FUNCTION_NAME", "FUNCTION_NAME"))
        if overrides.get("function") is None and not named:
            # Outside Lambda (tests, tools) the metric dimension is still this function's name.
            overrides["function"] = {"function_name": DEFAULT_FUNCTION_NAME}
        return super().from_env(env, **overrides)
