"""The OpenSky client and the producer loop against a LOCAL HTTP server playing OpenSky.

Each test scripts the server's answers (429, 500, slow, truncated, 401) and checks what the
producer would have published through a fake sink: nothing wrong, nothing twice, and it survives.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pipeline_common.logs import JsonFormatter
from pipeline_common.settings import ConfigError
from producer.opensky import (OpenSkyAuthError, OpenSkyBadResponse, OpenSkyClient, OpenSkyError,
                              OpenSkyRateLimited, OpenSkySettings, OpenSkyUnavailable, TokenProvider)
from producer.runner import ProducerError, SimulatedClock, run_producer
from producer.settings import ProducerConfig
from sinks import ListSink

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "opensky_states_all.json"
SNAPSHOT = json.loads(FIXTURE.read_text())
SECRET = "s3cr3t-client-secret-value"


class FakeOpenSky:
    """http.server on 127.0.0.1:<random port>; answers come from per-path queues."""

    def __init__(self):
        self.queues: dict[str, deque] = {"/api/states/all": deque(), "/token": deque()}
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _answer(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                owner.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                       "headers": dict(self.headers), "body": parse_qs(body)})
                queue = owner.queues.get(url.path)
                status, payload, headers, delay = queue.popleft() if queue else (404, b"no script", {}, 0)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def states(self, status=200, doc=None, raw: bytes | None = None, headers=None, delay=0.0):
        payload = raw if raw is not None else json.dumps(doc if doc is not None else SNAPSHOT).encode()
        self.queues["/api/states/all"].append((status, payload, headers or {}, delay))
        return self

    def token(self, access_token="tok-1", expires_in=1800, status=200):
        body = json.dumps({"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"})
        self.queues["/token"].append((status, body.encode(), {"Content-Type": "application/json"}, 0))
        return self

    def api_requests(self):
        return [r for r in self.requests if r["path"] == "/api/states/all"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def opensky():
    server = FakeOpenSky()
    yield server
    server.close()


def settings_for(server: FakeOpenSky, **kw) -> OpenSkySettings:
    base = dict(api_url=f"{server.url}/api", token_url=f"{server.url}/token", timeout_s=2.0,
                max_retries=2, backoff_base_s=0.5)
    return OpenSkySettings(**{**base, **kw})


def client_for(server, sleeps=None, **kw) -> OpenSkyClient:
    return OpenSkyClient(settings_for(server, **kw), sleep=(sleeps.append if sleeps is not None else lambda s: None))


def snapshot_at(t: int, bump: set[str] = frozenset()) -> dict:
    """The fixture re-stamped at time t; aircraft in ``bump`` got a new message (last_contact = t)."""
    doc = copy.deepcopy(SNAPSHOT)
    doc["time"] = t
    for row in doc["states"]:
        if row[0] in bump:
            row[4] = t
    return doc


def run_against(server, ticks, **config):
    sink = ListSink()
    cfg = ProducerConfig(source="opensky", max_ticks=ticks, opensky=settings_for(server), **config)
    stats = run_producer(cfg, sink=sink, clock=SimulatedClock(1_731_409_210.0))
    return stats, sink


# ---------------------------------------------------------------- the client
def test_fetch_asks_for_extended_states_with_bbox_and_icao24(opensky):
    opensky.states()
    snap = client_for(opensky).fetch_states(bbox=(45.8389, 5.9962, 47.8229, 10.5226), icao24=["3C6444", "4b1815"])
    assert len(snap.states) == 37
    query = opensky.api_requests()[0]["query"]
    assert query["extended"] == ["1"]
    assert (query["lamin"], query["lomin"], query["lamax"], query["lomax"]) == (
        ["45.8389"], ["5.9962"], ["47.8229"], ["10.5226"])
    assert query["icao24"] == ["3c6444", "4b1815"]


def test_anonymous_requests_carry_no_authorization(opensky):
    opensky.states()
    client_for(opensky).fetch_states()
    assert "Authorization" not in opensky.api_requests()[0]["headers"]
    assert not [r for r in opensky.requests if r["path"] == "/token"]


def test_remaining_credits_are_read_from_the_header(opensky):
    opensky.states(headers={"X-Rate-Limit-Remaining": "396"})
    assert client_for(opensky).fetch_states().credits_remaining == 396


def test_429_is_rate_limited_with_the_servers_retry_after(opensky):
    opensky.states(status=429, raw=b"Too many requests", headers={"X-Rate-Limit-Retry-After-Seconds": "42"})
    with pytest.raises(OpenSkyRateLimited) as err:
        client_for(opensky).fetch_states()
    assert err.value.retry_after == 42 and err.value.retriable
    assert len(opensky.api_requests()) == 1  # no hammering: the caller decides when to come back


def test_5xx_is_retried_with_growing_jittered_backoff_then_succeeds(opensky):
    opensky.states(status=500, raw=b"oops").states(status=503, raw=b"busy").states()
    sleeps: list[float] = []
    snap = client_for(opensky, sleeps=sleeps, max_retries=3).fetch_states()
    assert len(snap.states) == 37
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0  # base 0.5 s, doubled, "equal jitter"


def test_5xx_that_persists_is_unavailable_and_retriable(opensky):
    for _ in range(3):
        opensky.states(status=502, raw=b"bad gateway")
    with pytest.raises(OpenSkyUnavailable) as err:
        client_for(opensky, max_retries=2).fetch_states()
    assert err.value.retriable and "502" in str(err.value)
    assert len(opensky.api_requests()) == 3


def test_a_timeout_is_retried(opensky):
    # The answer comes 3 s late, the client waits 1 s: generous both ways, so a loaded machine that is slow to
    # answer the second (prompt) request does not time it out too.
    opensky.states(delay=3.0).states()
    sleeps: list[float] = []
    snap = client_for(opensky, sleeps=sleeps, timeout_s=1.0).fetch_states()
    assert len(snap.states) == 37 and len(sleeps) == 1


@pytest.mark.parametrize("body", [
    json.dumps(SNAPSHOT).encode()[:500],   # truncated mid-array
    b"<html>maintenance</html>",
    b"",
])
def test_malformed_json_is_a_bad_response(opensky, body):
    opensky.states(raw=body)
    with pytest.raises(OpenSkyBadResponse, match="malformed JSON"):
        client_for(opensky).fetch_states()


def test_other_4xx_is_not_retriable(opensky):
    opensky.states(status=400, raw=b"bad bbox")
    with pytest.raises(OpenSkyError) as err:
        client_for(opensky).fetch_states()
    assert not err.value.retriable and "400" in str(err.value)


# ---------------------------------------------------------------- OAuth2
def test_token_is_fetched_once_and_sent_as_bearer(opensky):
    opensky.token("tok-1").states().states()
    client = client_for(opensky, client_id="my-client", client_secret=SECRET)
    client.fetch_states()
    client.fetch_states()
    token_calls = [r for r in opensky.requests if r["path"] == "/token"]
    assert len(token_calls) == 1
    assert token_calls[0]["body"] == {"grant_type": ["client_credentials"], "client_id": ["my-client"],
                                      "client_secret": [SECRET]}
    assert [r["headers"]["Authorization"] for r in opensky.api_requests()] == ["Bearer tok-1"] * 2


def test_expired_token_401_is_refreshed_and_the_request_repeated(opensky, caplog):
    caplog.set_level(logging.DEBUG)
    opensky.token("tok-1").states().states(status=401, raw=b"expired").token("tok-2").states()
    client = client_for(opensky, client_id="my-client", client_secret=SECRET)
    client.fetch_states()
    snap = client.fetch_states()
    assert len(snap.states) == 37
    assert [r["headers"]["Authorization"] for r in opensky.api_requests()] == [
        "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    # Neither the secret nor a token may ever reach a log line, in any format.
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert "renewing the access token" in text
    for secret in (SECRET, "tok-1", "tok-2"):
        assert secret not in text


def test_token_is_renewed_shortly_before_it_expires():
    class Session:
        def __init__(self):
            self.calls = 0

        def post(self, url, **kw):
            self.calls += 1
            resp = type("R", (), {})()
            resp.status_code = 200
            resp.json = lambda: {"access_token": f"t{self.calls}", "expires_in": 300}
            return resp

    now = [1000.0]
    session = Session()
    tokens = TokenProvider(OpenSkySettings(client_id="c", client_secret="s"), session, clock=lambda: now[0])
    assert tokens.token() == "t1"
    now[0] += 260  # 40 s left: still outside the 30 s safety margin (10% of 300 s)
    assert tokens.token() == "t1"
    now[0] += 15   # 25 s left: renew before it can expire in flight
    assert tokens.token() == "t2" and session.calls == 2


def test_rejected_credentials_are_an_auth_error(opensky):
    opensky.token(status=401)
    with pytest.raises(OpenSkyAuthError, match="OPENSKY_CLIENT_ID") as err:
        client_for(opensky, client_id="my-client", client_secret=SECRET).fetch_states()
    assert not err.value.retriable and SECRET not in str(err.value)


def test_a_401_even_after_refresh_is_an_auth_error(opensky):
    opensky.token("a").states(status=401, raw=b"").token("b").states(status=401, raw=b"")
    with pytest.raises(OpenSkyAuthError):
        client_for(opensky, client_id="my-client", client_secret=SECRET).fetch_states()


def test_settings_never_show_the_secret():
    s = OpenSkySettings(client_id="my-client", client_secret=SECRET)
    assert SECRET not in repr(s) and s.authenticated and s.resolution_s == 5.0
    with pytest.raises(ConfigError, match="OPENSKY_CLIENT_SECRET"):
        OpenSkySettings(client_id="my-client")


# ---------------------------------------------------------------- the producer loop
def test_producer_survives_every_failure_and_publishes_only_good_new_states(opensky, caplog):
    caplog.set_level(logging.INFO)
    t0 = SNAPSHOT["time"]
    (opensky
     .states(doc=snapshot_at(t0))                                             # 1 publish all 37
     .states(status=429, raw=b"", headers={"X-Rate-Limit-Retry-After-Seconds": "120"})  # 2 wait
     .states(status=500, raw=b"").states(status=500, raw=b"").states(status=500, raw=b"")  # 3 unavailable
     .states(raw=json.dumps(snapshot_at(t0 + 10)).encode()[:700])              # 4 truncated
     .states(doc=snapshot_at(t0))                                             # 5 duplicate snapshot
     .states(doc=snapshot_at(t0 + 20, bump={"3c65a1", "a808c4"}))             # 6 two aircraft moved
     .states(headers={"X-Rate-Limit-Remaining": "380"},
             doc={"time": t0 + 30, "states": [["3c65a1", "DLH4AB", "Germany", t0 + 30, t0 + 30, 11.3, 49.1,
                                               11277.6, None]]}))            # 7 bad row rejected
    stats, sink = run_against(opensky, ticks=7)

    keys = [k for k, _ in sink.messages]
    assert len(keys) == 37 + 2
    assert sorted(keys[37:]) == ["3c65a1", "a808c4"]
    assert all(k == m["icao24"] and m["source"] == "opensky" for k, m in sink.messages)
    assert all(json.loads(json.dumps(m, allow_nan=False)) == m for _, m in sink.messages)
    assert stats.ticks == 7 and stats.errors == 3 and stats.rejected == 1
    assert stats.published == 39 and stats.failed == 0
    assert stats.skipped == 37 + 35  # duplicate snapshot + unchanged aircraft
    text = caplog.text
    assert "rate limit reached; waiting 120 s" in text
    assert "malformed JSON" in text
    assert "on_ground is missing" in text
    assert "credits remaining 380" in text


def test_a_long_retry_after_is_capped(opensky, caplog):
    caplog.set_level(logging.INFO)
    opensky.states(status=429, raw=b"", headers={"X-Rate-Limit-Retry-After-Seconds": "86400"}).states()
    cfg = ProducerConfig(source="opensky", max_ticks=2, opensky=settings_for(opensky, max_retry_after_s=300))
    clock = SimulatedClock(1_000_000.0)
    stats = run_producer(cfg, sink=ListSink(), clock=clock)
    assert "waiting 300 s (server asked for 86400 s)" in caplog.text
    assert clock.now() == pytest.approx(1_000_300.0)
    assert stats.published == 37


def test_polling_is_never_faster_than_the_data_resolution(opensky):
    for _ in range(3):
        opensky.states()
    cfg = ProducerConfig(source="opensky", max_ticks=3, interval_s=3.0, opensky=settings_for(opensky))
    clock = SimulatedClock(1_000_000.0)
    run_producer(cfg, sink=ListSink(), clock=clock)
    assert cfg.effective_interval_s == 10.0  # anonymous resolution
    assert clock.now() == pytest.approx(1_000_020.0)  # polls at 0, 10, 20 s


def test_bad_credentials_stop_the_producer_with_a_clear_error(opensky):
    opensky.token(status=401)
    cfg = ProducerConfig(source="opensky", max_ticks=3,
                         opensky=settings_for(opensky, client_id="my-client", client_secret=SECRET))
    with pytest.raises(ProducerError, match="token endpoint rejected"):
        run_producer(cfg, sink=ListSink(), clock=SimulatedClock(0.0))
