"""The alert state machine: one aircraft's previous state + a new position -> alerts + its next state.

Pure functions. Only flights in the air are observed (the states flight-processor publishes); a
state on the ground, without a position, or without a squawk changes nothing it does not carry.

Alert kinds:
  GEOFENCE_ENTER  the aircraft is in a fence it was not in at its previous position (or it is
                  seen for the first time inside the fence)
  GEOFENCE_EXIT   it was in the fence at its previous position and is not any more
  EMERGENCY       its squawk changed to 7500 (hijack), 7600 (radio failure) or 7700 (general
                  emergency), or it is first seen squawking one of them
  WATCHLIST       its icao24 or callsign matches the watchlist: once per appearance (an appearance
                  ends when the aircraft has not been seen for watch_gap_s)

Ordering: every transition is keyed on the position time (whole epoch seconds). A position that is
not newer than the state it is judged against (a redelivered record, or one that arrives out of
order) is ignored, so redelivery can never make an aircraft enter twice. A fence that no longer
exists raises no EXIT.

What is stored (must_store): the state is written only when the next position would be judged
differently from the stored one: an alert, a change of fences, squawk or watchlist flag, every
position of a watched aircraft (the appearance gap needs its exact last position time), and
otherwise at least every refresh_s of position time (the state's TTL; each aircraft after between half
and all of it: refresh_after_s). Between two writes every
position left the state as it was, so a redelivered one that is newer than the stored time is judged
against the same state, fences and watchlist as the first time, and again raises nothing.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field

from .flight_transform import evaluate
from .geofence import Fence, fences_containing

GEOFENCE_ENTER = "GEOFENCE_ENTER"
GEOFENCE_EXIT = "GEOFENCE_EXIT"
EMERGENCY = "EMERGENCY"
WATCHLIST = "WATCHLIST"
ALERT_TYPES = (GEOFENCE_ENTER, GEOFENCE_EXIT, EMERGENCY, WATCHLIST)
EMERGENCY_SQUAWKS = {"7500": "hijack", "7600": "radio failure", "7700": "general emergency"}
_SQUAWK = re.compile(r"^[0-7]{4}$")
_ICAO24 = re.compile(r"^[0-9a-f]{6}$")


class WatchlistError(ValueError):
    """A watchlist entry cannot be read; str(exc) names it."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One position of a flight in the air, as the alert rules need it."""
    icao24: str
    t: int                    # position time, whole epoch seconds
    longitude: float
    latitude: float
    altitude_ft: float | None
    squawk: str | None
    callsign: str | None
    notification: dict        # the eight notification fields (flight_transform), copied into alerts


@dataclass(frozen=True, slots=True)
class AircraftState:
    """What is remembered per aircraft between positions (stored in DynamoDB by alert_state)."""
    t: int = -1                                   # position time of the last position applied
    inside: frozenset[str] = frozenset()          # fences it was in at that position
    squawk: str | None = None                     # last squawk seen
    watched: bool = False                         # WATCHLIST already raised in this appearance


@dataclass(frozen=True, slots=True)
class Alert:
    alert_type: str
    icao24: str
    t: int
    notification: dict
    geofence: str | None = None
    squawk: str | None = None
    watch: str | None = None  # the watchlist entry that matched

    @property
    def alert_id(self) -> str:
        """Deterministic: the same position raises the same id, whoever computes it and how often."""
        subject = self.geofence or self.squawk or self.watch or ""
        return f"{self.icao24}:{self.t}:{self.alert_type}:{subject}"

    @property
    def dedup_id(self) -> str:
        """SNS FIFO MessageDeduplicationId (at most 128 characters)."""
        return hashlib.sha256(self.alert_id.encode("utf-8")).hexdigest()

    def body(self) -> dict:
        body = {**self.notification, "alert_id": self.alert_id, "alert_type": self.alert_type}
        if self.geofence is not None:
            body["geofence"] = self.geofence
        if self.squawk is not None:
            body["squawk"] = self.squawk
        if self.alert_type == EMERGENCY:
            body["emergency"] = EMERGENCY_SQUAWKS[self.squawk]
        if self.watch is not None:
            body["watch"] = self.watch
        return body

    def attributes(self) -> dict:
        """SNS message attributes that subscribers filter on (only those that apply)."""
        attributes = {"alert_type": self.alert_type, "origin_country": self.notification.get("origin_country")}
        if self.geofence is not None:
            attributes["geofence"] = self.geofence
        if self.squawk is not None:
            attributes["squawk"] = self.squawk
        return {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v}


def alert_body(text: str) -> dict:
    """An alert as a subscriber queue holds it: Alert.body() as JSON (raw delivery), or the SNS
    envelope around it (a subscription without raw delivery). ValueError when it is neither."""
    body = json.loads(text)
    if isinstance(body, dict) and body.get("Type") == "Notification":
        body = json.loads(body.get("Message") or "")
    if not isinstance(body, dict) or not body.get("alert_type"):
        raise ValueError("not an alert: no alert_type")
    return body


@dataclass(frozen=True)
class Watchlist:
    """Entries ``icao24=<6 hex digits>`` and ``callsign=<pattern>`` (shell-style * and ?, case-insensitive)."""
    icao24: frozenset[str] = frozenset()
    callsigns: tuple[str, ...] = ()
    _regex: re.Pattern | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str | None) -> "Watchlist":
        icao24, callsigns = set(), []
        for entry in (text or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            kind, _, value = entry.partition("=")
            kind, value = kind.strip().lower(), value.strip()
            if kind == "icao24" and _ICAO24.match(value.lower()):
                icao24.add(value.lower())
            elif kind == "callsign" and value:
                callsigns.append(value.upper())
            else:
                raise WatchlistError(f"watchlist entry {entry!r} is not icao24=<6 hex digits> or callsign=<pattern>")
        regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in callsigns)) if callsigns else None
        return cls(frozenset(icao24), tuple(callsigns), regex)

    def match(self, icao24: str, callsign: str | None) -> str | None:
        """The entry that matches, as written in the list, or None."""
        if icao24 in self.icao24:
            return f"icao24={icao24}"
        if callsign and self._regex is not None and self._regex.match(callsign.upper()):
            for pattern in self.callsigns:
                if fnmatch.fnmatchcase(callsign.upper(), pattern):
                    return f"callsign={pattern}"
        return None


def read_squawk(value: object) -> str | None:
    """A 4-digit octal squawk, or None for anything else (absent, malformed)."""
    if isinstance(value, str) and _SQUAWK.match(value.strip()):
        return value.strip()
    return None


def observe(state: object) -> tuple[Observation | None, str | None]:
    """(observation, None) for a flight in the air, (None, why not) for one filtered out.

    Uses flight-processor's own filter and validation, so both functions agree on what a flight in
    the air is; raises flight_transform.InvalidState for a malformed state."""
    notification, reason = evaluate(state)
    if notification is None:
        return None, reason
    seen_at = state.get("time_position")
    if seen_at is None:
        seen_at = state.get("last_contact")
    return Observation(notification["icao24"], int(seen_at // 1), notification["longitude"],
                       notification["latitude"], notification["altitude_feet"], read_squawk(state.get("squawk")),
                       notification["callsign"], notification), None


def step(state: AircraftState | None, obs: Observation, fences: tuple[Fence, ...], watchlist: Watchlist,
         watch_gap_s: int) -> tuple[AircraftState | None, list[Alert]]:
    """(next state, alerts); (None, []) when the position is not newer than the state (ignored)."""
    previous = state or AircraftState()
    if obs.t <= previous.t:
        return None, []
    alerts: list[Alert] = []
    names = {f.name for f in fences}
    inside = fences_containing(fences, obs.longitude, obs.latitude, obs.altitude_ft)
    was_inside = previous.inside & names
    for name in sorted(inside - was_inside):
        alerts.append(Alert(GEOFENCE_ENTER, obs.icao24, obs.t, obs.notification, geofence=name))
    for name in sorted(was_inside - inside):
        alerts.append(Alert(GEOFENCE_EXIT, obs.icao24, obs.t, obs.notification, geofence=name))

    squawk = obs.squawk if obs.squawk is not None else previous.squawk
    if obs.squawk in EMERGENCY_SQUAWKS and obs.squawk != previous.squawk:
        alerts.append(Alert(EMERGENCY, obs.icao24, obs.t, obs.notification, squawk=obs.squawk))

    new_appearance = previous.t < 0 or obs.t - previous.t > watch_gap_s
    watched = previous.watched and not new_appearance
    if not watched:
        entry = watchlist.match(obs.icao24, obs.callsign)
        if entry is not None:
            alerts.append(Alert(WATCHLIST, obs.icao24, obs.t, obs.notification, watch=entry))
            watched = True
    return AircraftState(obs.t, inside, squawk, watched), alerts


def fold(state: AircraftState | None, observations: list[Observation], fences: tuple[Fence, ...],
         watchlist: Watchlist, watch_gap_s: int) -> tuple[AircraftState | None, list[Alert], int]:
    """Apply positions in arrival order: (final state or None if nothing applied, alerts, ignored count)."""
    current, applied, alerts, ignored = state, False, [], 0
    for obs in observations:
        nxt, raised = step(current, obs, fences, watchlist, watch_gap_s)
        if nxt is None:
            ignored += 1
            continue
        current, applied = nxt, True
        alerts.extend(raised)
    return (current if applied else None), alerts, ignored


def refresh_after_s(icao24: str, refresh_s: int) -> int:
    """This aircraft's refresh interval: between half of refresh_s and all of it, fixed by its icao24.

    A session's aircraft are first written together (every one is new at its first position); with one
    interval for all they would all come due together again every refresh_s, a wave of thousands of
    writes in a few seconds. Spread this way the first refreshes cover half of refresh_s evenly and the
    later ones drift apart. Never longer than refresh_s, so the bound against the TTL holds."""
    if refresh_s <= 1:
        return refresh_s
    half = refresh_s // 2
    return refresh_s - zlib.crc32(icao24.encode()) % (half + 1)


def must_store(stored: AircraftState | None, final: AircraftState, alerts: list[Alert], refresh_s: int) -> bool:
    """Whether the state `final` (folded from `stored`) has to be written before its alerts go out.

    Not written, the stored state still judges every later position the same way `final` would: same
    fences, squawk and watchlist flag, and a position time that matters only for the appearance gap,
    which is only read while the aircraft is watched (those are written at every position). The
    position time is refreshed at least every refresh_s so that the state of an aircraft in flight
    never reaches its TTL (0: written at every position)."""
    if stored is None or alerts:
        return True
    if final.inside != stored.inside or final.squawk != stored.squawk or final.watched != stored.watched:
        return True
    return final.watched or final.t - stored.t >= refresh_s
