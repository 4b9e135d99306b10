"""A local OpenSky Network stand-in on 127.0.0.1: GET /api/states/all and an OAuth2 token endpoint,
answering from a script, so the real producer can be driven through rate limits, 5xx, slow and
truncated answers and an expired token, and every request it made can be checked afterwards.

    with OpenSkyStandIn([ok(snapshot), status(500), slow(3.0), ok(snapshot2)],
                        client_id="producer-test", client_secret=SECRET) as opensky:
        env = {"OPENSKY_API_URL": opensky.api_url, "OPENSKY_TOKEN_URL": opensky.token_url, ...}

Each GET of /api/states/all takes the next answer of the script; once the script is used up the
last 200 answer is repeated (the same snapshot time, which a correct producer skips).

With ``credits=CreditAccount(daily, now)`` it also keeps OpenSky's books: each request is charged
by its bounding box, X-Rate-Limit-Remaining is the real balance, a request the balance cannot pay
is a 429 with the seconds until the allowance renews (midnight UTC of ``now()``, a clock the test
controls), and what was left unspent at each renewal is recorded.
"""
from __future__ import annotations

import json
import math
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: tuple = ()
    delay_s: float = 0.0          # sleep before answering (a slow server; the client may time out)
    expire_token: bool = False    # the bearer token presented is expired from now on (answer 401)


def ok(doc: dict, remaining: int | None = 3900) -> Answer:
    headers = (("X-Rate-Limit-Remaining", str(remaining)),) if remaining is not None else ()
    return Answer(200, json.dumps(doc).encode(), headers)


def raw(body: bytes) -> Answer:
    """A 200 whose body is exactly these bytes (e.g. truncated JSON)."""
    return Answer(200, body)


def status(code: int, body: bytes = b"", **headers: str) -> Answer:
    return Answer(code, body, tuple((k.replace("_", "-"), v) for k, v in headers.items()))


def rate_limited(retry_after_s: int) -> Answer:
    return Answer(429, b"Too many requests", (("X-Rate-Limit-Retry-After-Seconds", str(retry_after_s)),
                                              ("X-Rate-Limit-Remaining", "0")))


def slow(delay_s: float, then: Answer | None = None) -> Answer:
    base = then or ok({"time": 0, "states": []})
    return Answer(base.status, base.body, base.headers, delay_s=delay_s)


def expired_token() -> Answer:
    return Answer(401, b'{"error": "token expired"}', expire_token=True)


class CreditAccount:
    """OpenSky's side of the credit budget, priced as its REST documentation says (written out here
    independently of the producer's own table, so a wrong table in the producer shows)."""

    DAY_S = 86_400

    def __init__(self, daily: int, now, remaining: int | None = None):
        self.daily = daily
        self.now = now
        self.balance = daily if remaining is None else remaining
        self.renews_at = (math.floor(now() / self.DAY_S) + 1) * self.DAY_S
        self.leftovers: list[int] = []     # balance unspent at each renewal
        self.charged: list[tuple[float, int]] = []   # (time, credits) of every paid request
        self.refused: list[float] = []     # times of requests answered 429

    @staticmethod
    def price(query: dict) -> int:
        try:
            lamin, lomin, lamax, lomax = (float(query[k][0]) for k in ("lamin", "lomin", "lamax", "lomax"))
        except KeyError:
            return 4  # the whole world
        area = (lamax - lamin) * (lomax - lomin)
        return 1 if area <= 25 else 2 if area <= 100 else 3 if area <= 400 else 4

    def charge(self, query: dict) -> tuple[bool, int, int]:
        """(paid?, balance after, seconds until renewal)."""
        now = self.now()
        while now >= self.renews_at:
            self.leftovers.append(self.balance)
            self.balance, self.renews_at = self.daily, self.renews_at + self.DAY_S
        cost = self.price(query)
        if cost > self.balance:
            self.refused.append(now)
            return False, self.balance, max(1, math.ceil(self.renews_at - now))
        self.balance -= cost
        self.charged.append((now, cost))
        return True, self.balance, 0


@dataclass
class Request:
    at: float                    # time.monotonic() when it arrived
    path: str
    status: int                  # what was answered (0: the client went away first)
    token: str | None = None     # bearer token presented
    query: dict = field(default_factory=dict)
    delay_s: float = 0.0         # how long the answer was held back (slow())


class OpenSkyStandIn:
    def __init__(self, script: list[Answer], *, client_id: str | None = None, client_secret: str | None = None,
                 token_lifetime_s: int = 1800, credits: CreditAccount | None = None) -> None:
        self.script = list(script)
        self.credits = credits
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime_s = token_lifetime_s
        self.requests: list[Request] = []
        self.tokens: list[str] = []          # every token issued, in order
        self.token_requests = 0
        self._valid: set[str] = set()
        self._last_ok: Answer | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="opensky-standin", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"

    def __enter__(self) -> "OpenSkyStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def states_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/states/all")]

    # -- request handling ------------------------------------------------------------------------
    def _next_answer(self) -> Answer:
        with self._lock:
            if self.script:
                answer = self.script.pop(0)
            else:
                answer = self._last_ok or status(503)
            if answer.status == 200 and not answer.delay_s:
                self._last_ok = answer
            return answer

    def _issue_token(self, form: dict) -> tuple[int, bytes]:
        with self._lock:
            self.token_requests += 1
            if form.get("grant_type") != ["client_credentials"] or form.get("client_id") != [self.client_id] \
                    or form.get("client_secret") != [self.client_secret]:
                return 401, b'{"error": "invalid_client"}'
            token = f"standin-token-{len(self.tokens) + 1}-{secrets.token_hex(12)}"
            self.tokens.append(token)
            self._valid.add(token)
        return 200, json.dumps({"access_token": token, "expires_in": self.token_lifetime_s,
                                "token_type": "Bearer"}).encode()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:  # the test reads standin.requests instead
                return

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's algorithm and the
                # client's delayed ACK hold every answer back ~40 ms (a simulated day is thousands).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, code: int, body: bytes, headers=()) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                code, body = standin._issue_token(form) if urlsplit(self.path).path == "/auth/token" else (404, b"")
                with standin._lock:
                    standin.requests.append(Request(time.monotonic(), urlsplit(self.path).path, code))
                self._send(code, body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
                entry = Request(time.monotonic(), url.path, 0, token, parse_qs(url.query))
                with standin._lock:
                    standin.requests.append(entry)
                if url.path != "/api/states/all":
                    entry.status = 404
                    self._send(404, b"")
                    return
                if standin.client_id is not None:
                    with standin._lock:
                        valid = token in standin._valid
                    if not valid:
                        entry.status = 401
                        self._send(401, b'{"error": "invalid token"}')
                        return
                if standin.credits is not None:
                    with standin._lock:
                        paid, balance, retry_after = standin.credits.charge(entry.query)
                    if not paid:
                        entry.status = 429
                        self._send(429, b"Too many requests", (("X-Rate-Limit-Retry-After-Seconds", str(retry_after)),
                                                               ("X-Rate-Limit-Remaining", "0")))
                        return
                    answer = standin._next_answer()
                    answer = Answer(answer.status, answer.body, tuple(
                        h for h in answer.headers if h[0] != "X-Rate-Limit-Remaining")
                        + (("X-Rate-Limit-Remaining", str(balance)),), answer.delay_s, answer.expire_token)
                else:
                    answer = standin._next_answer()
                if answer.expire_token:
                    with standin._lock:
                        standin._valid.discard(token)
                if answer.delay_s:
                    entry.delay_s = answer.delay_s
                    time.sleep(answer.delay_s)
                try:
                    self._send(answer.status, answer.body, answer.headers)
                    entry.status = answer.status
                except (BrokenPipeError, ConnectionResetError):
                    entry.status = 0  # the client timed out and left: nothing was delivered

        return Handler
