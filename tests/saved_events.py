"""Saved events and responses (tests/events/, tests/fixtures/): one loader for every test."""
from __future__ import annotations

import json
from pathlib import Path

TESTS = Path(__file__).resolve().parent
EVENTS = TESTS / "events"
FIXTURES = TESTS / "fixtures"


def load_event(name: str) -> dict:
    """A saved event from tests/events/ (e.g. 'aws_kafka_msk.json')."""
    return json.loads((EVENTS / name).read_text())
