"""GEOFENCE_REFRESH_S on a clock the test moves: a running reader (flight-alerts, the tracker's map)
does not ask S3 again within the interval, asks with the ETag at its end, and takes a new object."""
from __future__ import annotations

import json

import boto3
from moto import mock_aws

from flight_domain.geofence_source import GeofenceSource


def fence(name: str, lon: float) -> bytes:
    ring = [[lon, 0], [lon + 1, 0], [lon + 1, 1], [lon, 1], [lon, 0]]
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}).encode()


class CountingS3:
    """The moto client, counting the GETs and whether each carried the ETag."""

    def __init__(self, s3):
        self._s3 = s3
        self.gets: list[bool] = []

    def get_object(self, **kwargs):
        self.gets.append("IfNoneMatch" in kwargs)
        return self._s3.get_object(**kwargs)


@mock_aws
def test_the_fences_are_re_read_only_at_the_end_of_each_refresh_interval(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="fences")
    s3.put_object(Bucket="fences", Key="f.geojson", Body=fence("Old", 0))
    now = [1000.0]
    counting = CountingS3(s3)
    source = GeofenceSource(counting, "fences", "f.geojson", refresh_s=30, clock=lambda: now[0])
    assert [f.name for f in source.current()] == ["Old"] and counting.gets == [False]
    # WHEN `make geofences` replaces the object
    s3.put_object(Bucket="fences", Key="f.geojson", Body=fence("New", 10))
    # THEN within the interval the reader keeps what it has, without asking S3
    now[0] += 29.9
    assert [f.name for f in source.current()] == ["Old"] and counting.gets == [False]
    # ... at its end it asks with the ETag it holds and takes the new fences
    now[0] += 0.1
    assert [f.name for f in source.current()] == ["New"] and counting.gets == [False, True]
    # ... and the next interval starts from that check: unchanged, it still asks only once per interval
    now[0] += 15
    source.current()
    now[0] += 15
    source.current()
    assert counting.gets == [False, True, True]
