"""Shared test helpers: saved events, fake AWS credentials, the Lambda source on sys.path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_SRC = ROOT / "src" / "lambda"

# ROOT makes `from infra import stack` importable, tests/ makes `from saved_events import load_event`
# importable; src/lambda is a zip root, not a package ('lambda' is a keyword), so its modules import flat.
for _path in (ROOT, ROOT / "tests", LAMBDA_SRC):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


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
