"""The OpenSky access token is renewed before expires_in runs out, against a token server that really
expires its tokens, at a lifetime of two seconds instead of OpenSky's 30 minutes."""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from opensky_standin import OpenSkyStandIn, ok
from producer.opensky import OpenSkyClient, OpenSkySettings

SNAPSHOT = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "opensky_states_all.json").read_text())
CLIENT_KEY = secrets.token_hex(12)  # made up per run: no credential-looking literal in the repository
LIFETIME_S = 2


class ExpiringTokens(set):
    """The stand-in's set of valid tokens, where a token stops being valid expires_in after it was issued."""

    def __init__(self, lifetime_s: float):
        super().__init__()
        self.lifetime_s = lifetime_s
        self.issued_at: dict[str, float] = {}

    def add(self, token: str) -> None:
        self.issued_at[token] = time.monotonic()
        super().add(token)

    def __contains__(self, token: object) -> bool:
        issued = self.issued_at.get(token)
        return (super().__contains__(token) and issued is not None
                and time.monotonic() < issued + self.lifetime_s)


class ExpiringStandIn(OpenSkyStandIn):
    """The OpenSky stand-in whose tokens expire on time, answering token requests after a delay."""

    def __init__(self, *, token_delay_s: float = 0.0, **kwargs):
        super().__init__([ok(SNAPSHOT)], client_id="clock-test", client_secret=CLIENT_KEY,
                         token_lifetime_s=LIFETIME_S, **kwargs)
        self._valid = ExpiringTokens(LIFETIME_S)
        self.token_delay_s = token_delay_s

    def _issue_token(self, form: dict):
        answer = super()._issue_token(form)  # issued now: its lifetime runs from here ...
        time.sleep(self.token_delay_s)       # ... while the answer is still on its way
        return answer


def poll_for(standin: ExpiringStandIn, seconds: float, every_s: float = 0.1) -> int:
    """fetch_states() every ``every_s`` for ``seconds``; returns how many succeeded."""
    client = OpenSkyClient(OpenSkySettings(api_url=standin.api_url, token_url=standin.token_url,
                                           client_id="clock-test", client_secret=CLIENT_KEY, timeout_s=5.0))
    done, end = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            client.fetch_states()
            done += 1
            time.sleep(every_s)
    finally:
        client.close()
    return done


@pytest.mark.parametrize("token_delay_s", [0.0, 0.5])
def test_the_token_is_renewed_before_it_expires_and_no_request_is_refused(token_delay_s):
    # GIVEN a token server whose tokens live 2 s (answering after token_delay_s)
    with ExpiringStandIn(token_delay_s=token_delay_s) as standin:
        # WHEN the client polls every 0.1 s for 4 s
        done = poll_for(standin, 4.0)
        states = standin.states_requests()
    # THEN every request carried a token that was still valid: no 401, so no reactive refresh either
    assert done >= 10
    assert [r.status for r in states] == [200] * len(states)
    # ... because the token was renewed ahead of time, about every 2 s minus the margin and the delay
    assert 2 <= standin.token_requests <= 5, standin.token_requests
    # ... and no token was used after its server-side expiry
    issued = standin._valid.issued_at
    assert all(r.at < issued[r.token] + LIFETIME_S for r in states)
