"""OpenSky Network REST client for GET /states/all: OAuth2 client credentials, rate limits, retries.

Every non-200 answer becomes a typed error (see ``OpenSkyError``) so the caller can tell
"rate limited, retry after N s" from "failed"; nothing is silently turned into ``None``.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping, Sequence

import requests

from pipeline_common.backoff import backoff_delay
from pipeline_common.logs import mask
from pipeline_common.settings import ConfigError, Settings, setting

from .state_vector import InvalidStateVector, parse_state_vector

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://opensky-network.org/api"
DEFAULT_TOKEN_URL = "https://auth.opensky-network.org/auth/realms/opensky-network/protocol/openid-connect/token"
# Data resolution per the REST docs: anonymous users get a new snapshot every 10 s, users every 5 s.
ANONYMOUS_RESOLUTION_S = 10.0
AUTHENTICATED_RESOLUTION_S = 5.0
DEFAULT_RETRY_AFTER_S = 60.0


# ---------------------------------------------------------------- errors
class OpenSkyError(Exception):
    """Base of every OpenSky failure. ``retriable`` says whether asking again later can succeed."""
    retriable = False


class OpenSkyRateLimited(OpenSkyError):
    """429: out of credits; ``retry_after`` is X-Rate-Limit-Retry-After-Seconds."""
    retriable = True

    def __init__(self, retry_after: float, message: str | None = None):
        super().__init__(message or f"rate limited by OpenSky, retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class OpenSkyUnavailable(OpenSkyError):
    """Timeouts, connection errors and 5xx that persisted through the retries."""
    retriable = True


class OpenSkyBadResponse(OpenSkyError):
    """200 with a body that is not the documented JSON (truncated, malformed, wrong shape)."""
    retriable = True


class OpenSkyAuthError(OpenSkyError):
    """Credentials rejected (token endpoint 400/401, or API 401/403 even with a fresh token)."""
    retriable = False


class OpenSkyRequestError(OpenSkyError):
    """Any other 4xx: the request itself is wrong (e.g. a bounding box the API refuses)."""
    retriable = False


# ---------------------------------------------------------------- settings
def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("is not an http(s) URL")
    return text.rstrip("/")


@dataclass(frozen=True)
class OpenSkySettings(Settings):
    USED_BY: ClassVar[str] = "producer (OpenSky)"

    api_url: str = setting("OPENSKY_API_URL", DEFAULT_API_URL, parse=_http_url,
                           help="REST base URL (point it at a local stand-in for tests)")
    token_url: str = setting("OPENSKY_TOKEN_URL", DEFAULT_TOKEN_URL, parse=_http_url,
                             doc_default="OpenSky's Keycloak token endpoint", help="OAuth2 token URL")
    client_id: str | None = setting("OPENSKY_CLIENT_ID", None, doc_default="— (anonymous)",
                                    help="OAuth2 client credentials: client id")
    client_secret: str | None = setting("OPENSKY_CLIENT_SECRET", None, secret=True, doc_default="— (anonymous)",
                                        help="OAuth2 client credentials: secret")
    timeout_s: float = setting("OPENSKY_TIMEOUT", 15.0, minimum=0.1, unit="s", help="HTTP timeout per request")
    max_retries: int = setting("OPENSKY_MAX_RETRIES", 3, minimum=0, help="retries of a timeout or 5xx")
    backoff_base_s: float = setting("OPENSKY_BACKOFF_BASE", 1.0, minimum=0.0, unit="s",
                                    help="first retry delay (doubles, with jitter)")
    backoff_cap_s: float = 30.0
    max_retry_after_s: float = setting("OPENSKY_MAX_RETRY_AFTER", 300.0, minimum=0.0, unit="s",
                                       help="cap on the wait a 429 asks for")
    daily_credits: int | None = setting(
        "OPENSKY_DAILY_CREDITS", None, minimum=1, flag="--daily-credits", metavar="N",
        doc_default="`400` anonymous / `4000` authenticated",
        help="the account's credits per day (active feeders: 8000); polls are spread so they last the day")
    budget_fraction: float = setting("OPENSKY_BUDGET_FRACTION", 1.0, greater_than=0.0, maximum=1.0,
                                     flag="--budget-fraction", metavar="F",
                                     help="share of the daily credits this producer may spend (the rest is "
                                          "kept for other tools)")

    def check(self) -> None:
        if bool(self.client_id) != bool(self.client_secret):
            raise ConfigError("OPENSKY_CLIENT_ID and OPENSKY_CLIENT_SECRET must be set together "
                              "(leave both empty for anonymous access)")
        for name in ("api_url", "token_url"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise ConfigError(f"OPENSKY_{name.upper()}={getattr(self, name)!r} is not an http(s) URL")

    @property
    def authenticated(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def resolution_s(self) -> float:
        return AUTHENTICATED_RESOLUTION_S if self.authenticated else ANONYMOUS_RESOLUTION_S


# ---------------------------------------------------------------- parsing
@dataclass(frozen=True)
class StatesSnapshot:
    """One /states/all answer: valid states, and the rows that were rejected with the reason."""
    time: int
    states: list[dict]
    rejected: list[tuple[int, str]] = field(default_factory=list)
    credits_remaining: int | None = None


def parse_states_response(doc: object, credits_remaining: int | None = None) -> StatesSnapshot:
    """Decoded JSON -> StatesSnapshot. A bad row is rejected on its own; a bad document raises."""
    if not isinstance(doc, dict):
        raise OpenSkyBadResponse(f"expected a JSON object, got {type(doc).__name__}")
    snap_time = doc.get("time")
    if isinstance(snap_time, bool) or not isinstance(snap_time, (int, float)):
        raise OpenSkyBadResponse("response has no integer 'time'")
    rows = doc.get("states")
    if rows is None:  # documented: null when no aircraft matched
        rows = []
    if not isinstance(rows, list):
        raise OpenSkyBadResponse(f"'states' must be an array or null, got {type(rows).__name__}")
    states, rejected = [], []
    for i, row in enumerate(rows):
        try:
            states.append(parse_state_vector(row))
        except InvalidStateVector as exc:
            rejected.append((i, exc.reason))
    return StatesSnapshot(int(snap_time), states, rejected, credits_remaining)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(float(headers[name]))
    except (KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------- OAuth2
class TokenProvider:
    """OAuth2 client-credentials access token, cached and renewed shortly before it expires."""

    def __init__(self, settings: OpenSkySettings, session: requests.Session,
                 clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._session = session
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._fetch()
            return self._token

    def _fetch(self) -> None:
        s = self._settings
        # The token's life starts on the server, somewhere between this request and its answer: count
        # it from the request, so a slow token endpoint cannot make a token look valid after it expired.
        requested_at = self._clock()
        try:
            resp = self._session.post(s.token_url, timeout=(5.0, s.timeout_s), data={
                "grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret})
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise OpenSkyUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from None
        if resp.status_code in (400, 401, 403):
            raise OpenSkyAuthError(f"token endpoint rejected client_id {mask(s.client_id)} "
                                   f"(HTTP {resp.status_code}); check OPENSKY_CLIENT_ID/OPENSKY_CLIENT_SECRET")
        if resp.status_code >= 500 or resp.status_code == 429:
            raise OpenSkyUnavailable(f"token endpoint answered HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise OpenSkyAuthError(f"token endpoint answered HTTP {resp.status_code}")
        try:
            doc = resp.json()
            token = doc["access_token"]
            lifetime = float(doc.get("expires_in", 1800))
        except (ValueError, KeyError, TypeError):
            raise OpenSkyBadResponse("token endpoint answered without a usable access_token") from None
        if not isinstance(token, str) or not token:
            raise OpenSkyBadResponse("token endpoint answered with an empty access_token")
        # Renew early so a token never expires between the check and the request.
        margin = min(60.0, lifetime * 0.1)
        self._token, self._expires_at = token, requested_at + lifetime - margin
        self.refreshes += 1
        logger.info("obtained OpenSky access token for client %s, valid %.0f s",
                    mask(s.client_id), lifetime, extra={"token_fingerprint": mask(token)})


# ---------------------------------------------------------------- client
class OpenSkyClient:
    """GET /states/all with retries (timeouts, 5xx), token refresh (401) and typed errors."""

    def __init__(self, settings: OpenSkySettings, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None):
        self.settings = settings
        self._session = session or requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._tokens = TokenProvider(settings, self._session) if settings.authenticated else None
        self.credits_remaining: int | None = None

    def close(self) -> None:
        self._session.close()

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt + 1, self.settings.backoff_base_s, self.settings.backoff_cap_s, self._rng.random)

    def fetch_states(self, bbox: Sequence[float] | None = None,
                     icao24: Sequence[str] = ()) -> StatesSnapshot:
        """Latest snapshot. bbox = (lamin, lomin, lamax, lomax) in degrees."""
        params: list[tuple[str, object]] = [("extended", 1)]
        if bbox:
            params += list(zip(("lamin", "lomin", "lamax", "lomax"), bbox))
        params += [("icao24", code.lower()) for code in icao24]
        url = f"{self.settings.api_url}/states/all"
        attempt, refreshed = 0, False
        while True:
            try:
                resp = self._get(url, params)
            except OpenSkyUnavailable as exc:
                if attempt >= self.settings.max_retries:
                    raise
                delay = self._backoff(attempt)
                attempt += 1
                logger.warning("OpenSky request failed (%s); retry %d/%d in %.1f s",
                               exc, attempt, self.settings.max_retries, delay, extra={"url": url})
                self._sleep(delay)
                continue
            if resp.status_code == 401 and self._tokens is not None and not refreshed:
                # Expired or revoked token: fetch a fresh one once, then give up.
                logger.info("OpenSky answered 401; renewing the access token", extra={"url": url})
                self._tokens.invalidate()
                refreshed = True
                continue
            return self._handle(resp, url)

    def _get(self, url: str, params: list) -> requests.Response:
        headers = {"Accept": "application/json"}
        if self._tokens is not None:
            headers["Authorization"] = f"Bearer {self._tokens.token()}"
        try:
            resp = self._session.get(url, params=params, headers=headers, timeout=(5.0, self.settings.timeout_s))
        except requests.Timeout:
            raise OpenSkyUnavailable("request timed out") from None
        except requests.ConnectionError as exc:
            raise OpenSkyUnavailable(f"connection failed: {type(exc).__name__}") from None
        if resp.status_code >= 500:
            raise OpenSkyUnavailable(f"HTTP {resp.status_code}")
        return resp

    def _handle(self, resp: requests.Response, url: str) -> StatesSnapshot:
        remaining = _int_header(resp.headers, "X-Rate-Limit-Remaining")
        if remaining is not None:
            self.credits_remaining = remaining
        if resp.status_code == 429:
            retry_after = _int_header(resp.headers, "X-Rate-Limit-Retry-After-Seconds")
            raise OpenSkyRateLimited(float(retry_after) if retry_after is not None else DEFAULT_RETRY_AFTER_S)
        if resp.status_code in (401, 403):
            raise OpenSkyAuthError(f"OpenSky refused the request (HTTP {resp.status_code})"
                                   + ("" if self._tokens else "; anonymous access denied"))
        if resp.status_code != 200:
            raise OpenSkyRequestError(f"OpenSky answered HTTP {resp.status_code}: {resp.text[:200]!r}")
        try:
            doc = json.loads(resp.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise OpenSkyBadResponse(f"malformed JSON ({len(resp.content)} bytes): {exc}") from None
        return parse_states_response(doc, self.credits_remaining)
