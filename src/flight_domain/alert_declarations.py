"""The alerts side's settings that more than one component reads (flight-alerts, its deployer
infra/deploy/alerts_resources.py and the tracker's map), declared once here; each makes them fields with
``GEOFENCES_KEY.field()``."""
from __future__ import annotations

from pipeline_common.settings import Setting

DEFAULT_KEY = "geofences.geojson"
DEFAULT_WATCHLIST = "callsign=QFA*,callsign=BAW1*"

GEOFENCES_BUCKET = Setting("GEOFENCES_BUCKET", "", doc_default="`flightpipe-geofences-<account>`",
                           help="S3 bucket holding the geofences (the deployer creates it)")
GEOFENCES_KEY = Setting("GEOFENCES_KEY", DEFAULT_KEY, help="S3 key of the geofences' GeoJSON")
GEOFENCE_REFRESH_S = Setting("GEOFENCE_REFRESH_S", 30, minimum=0, maximum=3600, unit="s", flag=None,
                             help="how often a running function (and the tracker's map) checks the fences "
                                  "object for a new version")
ALERTS_TOPIC_NAME = Setting("ALERTS_TOPIC_NAME", "FlightAlerts", help="the alerts topic")
ALERTS_TABLE = Setting("ALERTS_TABLE", "FlightAlertState", help="DynamoDB table of the per-aircraft alert state")
# The text the deployer passes on to the function (and checks with alert_rules.Watchlist.parse).
ALERT_WATCHLIST = Setting("ALERT_WATCHLIST", DEFAULT_WATCHLIST,
                          help="comma-separated `icao24=<hex>` and `callsign=<pattern>` entries")


def default_geofences_bucket(account: str) -> str:
    """The bucket the deployer creates when GEOFENCES_BUCKET is not set (one per AWS account)."""
    return f"flightpipe-geofences-{account}"
