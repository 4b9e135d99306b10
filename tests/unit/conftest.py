"""Unit tests never reach a server: the Makefile exports AWS_ENDPOINT_URL for the local stack,
which would send boto3 past moto's mock to a real endpoint."""
import pytest


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
