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
from typing import Callable, Mapping, Sequence

import requests

from pipeline_common.logs import mask
from pipeline_common.settings import ConfigError, env_float, env_int, env_str

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
@dataclass(frozen=True)
class OpenSkySettings:
    api_url: str = DEFAULT_API_URL
    token_url: str = DEFAULT_TOKEN_URL
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    timeout_s: float = 15.0
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    max_retry_after_s: float = 300.0
    daily_credits: int | None = None      # None: 400 anonymous / 4,000 authenticated (feeders set 8,000)
    budget_fraction: float = 1.0          # share of the daily credits this producer may spend

    def __post_init__(self) -> None:
        if self.daily_credits is not None and self.daily_credits < 1:
            raise ConfigError(f"OPENSKY_DAILY_CREDITS={self.daily_credits} must be >= 1")
        if not 0 < self.budget_fraction <= 1:
            raise ConfigError(f"OPENSKY_BUDGET_FRACTION={self.budget_fraction} must be > 0 and <= 1")
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "OpenSkySettings":
        """Values passed in ``overrides`` (not None) win over the environment."""
        values = dict(
            api_url=env_str("OPENSKY_API_URL", DEFAULT_API_URL, env=env).rstrip("/"),
            token_url=env_str("OPENSKY_TOKEN_URL", DEFAULT_TOKEN_URL, env=env),
            client_id=env_str("OPENSKY_CLIENT_ID", None, env=env),
            client_secret=env_str("OPENSKY_CLIENT_SECRET", None, env=env),
            timeout_s=env_float("OPENSKY_TIMEOUT", 15.0, env=env, minimum=0.1),
            max_retries=env_int("OPENSKY_MAX_RETRIES", 3, env=env, minimum=0),
            backoff_base_s=env_float("OPENSKY_BACKOFF_BASE", 1.0, env=env, minimum=0.0),
            max_retry_after_s=env_float("OPENSKY_MAX_RETRY_AFTER", 300.0, env=env, minimum=0.0),
            daily_credits=env_int("OPENSKY_DAILY_CREDITS", None, env=env, minimum=1),
            budget_fraction=env_float("OPENSKY_BUDGET_FRACTION", 1.0, env=env),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


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
        self._token, self._expires_at = token, self._clock() + lifetime - margin
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
        # "Equal jitter": never zero, never synchronised with other clients.
        ceiling = min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2 ** attempt)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

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
