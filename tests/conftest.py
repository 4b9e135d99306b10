"""Shared test fixtures: fake AWS credentials. Import paths come from pyproject.toml (the editable
install and pytest's `pythonpath`), not from here."""
from __future__ import annotations

import pytest


@pytest.fixture
def aws_credentials(monkeypatch):
    """Fake credentials so that moto (and nothing real) is ever reached by unit tests."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
