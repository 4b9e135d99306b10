"""The geofences in S3 as a running reader sees them: loaded with the function's own parser
(geofence.parse_fences), re-read only when the object changes. Used by flight-alerts and by the
tracker's map (GET /geofences), so both draw and test exactly the same fences."""
from __future__ import annotations

import json
import logging
import threading
import time

from botocore.exceptions import ClientError

from .geofence import Fence, GeofenceError, parse_fences

logger = logging.getLogger(__name__)


class GeofenceSource:
    """The fences in S3, re-read when the object changes (a conditional GET every refresh_s), so a
    running function picks up `make geofences` without a redeploy."""

    def __init__(self, s3, bucket: str, key: str, refresh_s: int, clock=time.monotonic):
        self._s3, self._bucket, self._key, self._refresh_s, self._clock = s3, bucket, key, refresh_s, clock
        self._fences: tuple[Fence, ...] | None = None
        self._etag: str | None = None
        self._document: dict | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> tuple[Fence, ...]:
        """The fences; raises if they have never been readable (alerts from no fences would be wrong)."""
        return self.current_version()[0]

    def current_version(self) -> tuple[tuple[Fence, ...], str | None, dict | None]:
        """The fences, the S3 ETag they were read from and the GeoJSON document they were parsed from
        (None, None when there is no fences object); raises like current()."""
        with self._lock:
            if self._fences is None or self._clock() - self._checked_at >= self._refresh_s:
                self._refresh()
            return self._fences, self._etag, self._document

    def _refresh(self) -> None:
        kwargs = {"IfNoneMatch": self._etag} if self._etag and self._fences is not None else {}
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self._key, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("304", "NotModified") or status == 304:
                self._checked_at = self._clock()
                return
            if code in ("NoSuchKey", "404"):
                logger.warning("no geofences at s3://%s/%s: no geofence alerts", self._bucket, self._key)
                self._fences, self._etag, self._document, self._checked_at = (), None, None, self._clock()
                return
            if self._fences is not None:
                logger.error("cannot re-read geofences (%s); keeping the %d loaded", code, len(self._fences))
                self._checked_at = self._clock()
                return
            raise
        etag = response.get("ETag")
        try:
            document = json.loads(response["Body"].read())
            fences = parse_fences(document)
        except (ValueError, GeofenceError) as exc:
            if self._fences is None:
                raise GeofenceError(f"s3://{self._bucket}/{self._key}: {exc}") from None
            logger.error("s3://%s/%s is not valid geofences (%s); keeping the %d loaded",
                         self._bucket, self._key, exc, len(self._fences))
            self._etag, self._checked_at = etag, self._clock()
            return
        logger.info("loaded %d geofences from s3://%s/%s (%s)", len(fences), self._bucket, self._key, etag)
        self._fences, self._etag, self._document, self._checked_at = fences, etag, document, self._clock()
