"""The geofences for the map: the same S3 object flight-alerts reads, through the same reader and
parser (flight_domain.geofence_source, flight_domain.geofence), served as GeoJSON with the object's ETag."""
from __future__ import annotations

import logging
import threading

from botocore.exceptions import BotoCoreError, ClientError

from flight_domain.alert_declarations import default_geofences_bucket
from flight_domain.geofence import Fence, GeofenceError
from flight_domain.geofence_source import GeofenceSource
from pipeline_common.aws_clients import AwsClients

from .alerts_feed import aws_clients, aws_reason
from .alerts_settings import TrackerAlertsSettings

logger = logging.getLogger(__name__)

EMPTY_ETAG = '"no-geofences"'


class GeofencesUnavailable(RuntimeError):
    """The fences cannot be read (no endpoint, no bucket, not valid); str(exc) says why."""


def fences_geojson(document: dict | None, fences: tuple[Fence, ...]) -> list[dict]:
    """One Feature per fence as the function sees it: its name, floor and ceiling, the other
    properties of its feature, and its rings as parsed (unwrapped across the antimeridian, so a fence
    written 170 .. -170 is drawn as one shape, not across the whole world)."""
    features = (document or {}).get("features") or []
    out = []
    for index, fence in enumerate(fences):
        source = features[index] if index < len(features) and isinstance(features[index], dict) else {}
        properties = {**(source.get("properties") or {}), "name": fence.name,
                      "floor_ft": fence.floor_ft, "ceiling_ft": fence.ceiling_ft}
        polygons = [[[list(p) for p in polygon.outer], *[[list(p) for p in hole] for hole in polygon.holes]]
                    for polygon in fence.polygons]
        geometry = ({"type": "Polygon", "coordinates": polygons[0]} if len(polygons) == 1
                    else {"type": "MultiPolygon", "coordinates": polygons})
        out.append({"type": "Feature", "properties": properties, "geometry": geometry})
    return out


class TrackerGeofences:
    def __init__(self, settings: TrackerAlertsSettings, clients: AwsClients | None = None) -> None:
        self.settings = settings
        self._clients = clients
        self._source: GeofenceSource | None = None
        self._lock = threading.Lock()
        bucket = settings.geofences_bucket or default_geofences_bucket("<account>")
        self.location = f"s3://{bucket}/{settings.geofences_key}"  # the real account once resolved

    def _reader(self) -> GeofenceSource:
        with self._lock:
            if self._source is None:
                clients = self._clients = self._clients or aws_clients()
                bucket = self.settings.geofences_bucket or default_geofences_bucket(
                    clients.sts.get_caller_identity()["Account"])
                self._source = GeofenceSource(clients.s3, bucket, self.settings.geofences_key,
                                              self.settings.geofence_refresh_s)
                self.location = f"s3://{bucket}/{self.settings.geofences_key}"
            return self._source

    def current(self) -> tuple[dict, str]:
        """(FeatureCollection, ETag); raises GeofencesUnavailable with the reason. An absent object is
        an empty collection (no fences), not an error."""
        try:
            reader = self._reader()
            fences, etag, document = reader.current_version()
        except (ClientError, BotoCoreError, GeofenceError) as exc:
            raise GeofencesUnavailable(f"{self.location}: {aws_reason(exc)}") from None
        collection = {"type": "FeatureCollection", "source": self.location, "count": len(fences),
                      "features": fences_geojson(document, fences)}
        return collection, etag or EMPTY_ETAG
