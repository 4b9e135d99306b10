"""Invocation outcomes: a function error is the records' fault; throttling and outages are not."""
from __future__ import annotations

import io

import boto3
import pytest
from botocore.stub import Stubber

from trigger.invoker import (FUNCTION_ERROR, OK, REJECTED, THROTTLED, TOO_LARGE, UNAVAILABLE, LambdaInvoker,
                             classify_client_error)


@pytest.fixture
def stubbed(aws_credentials):
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub


def test_success_returns_the_payload(stubbed):
    client, stub = stubbed
    stub.add_response("invoke", {"StatusCode": 200, "ExecutedVersion": "$LATEST",
                                 "Payload": io.BytesIO(b'{"received": 2}')},
                      {"FunctionName": "flight-processor", "InvocationType": "RequestResponse",
                       "Payload": b"{}", "Qualifier": "live"})
    result = LambdaInvoker("flight-processor", "live", client=client)(b"{}")
    assert result.outcome == OK and result.payload == b'{"received": 2}' and result.executed_version == "$LATEST"


def test_function_error_is_reported_as_such(stubbed):
    client, stub = stubbed
    stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                 "Payload": io.BytesIO(b'{"errorMessage": "boom"}')})
    result = LambdaInvoker("f", client=client)(b"{}")
    assert result.outcome == FUNCTION_ERROR and result.function_error == "Unhandled"


@pytest.mark.parametrize("code, status, outcome", [
    ("TooManyRequestsException", 429, THROTTLED),
    ("RequestTooLargeException", 413, TOO_LARGE),
    ("ServiceException", 500, UNAVAILABLE),
    ("ResourceNotFoundException", 404, REJECTED),
])
def test_service_errors_are_classified(stubbed, code, status, outcome):
    client, stub = stubbed
    stub.add_client_error("invoke", service_error_code=code, http_status_code=status)
    result = LambdaInvoker("f", client=client)(b"{}")
    assert result.outcome == outcome and result.is_infrastructure == (outcome != TOO_LARGE)
    assert classify_client_error(code, status) == outcome


def test_an_endpoint_that_refuses_connections_is_unavailable_not_a_function_error(aws_credentials):
    # Nothing listens on port 9 of localhost: connection refused, as when the endpoint is down.
    invoker = LambdaInvoker("f", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                            read_timeout_s=2, connect_timeout_s=1)
    result = invoker(b"{}")
    assert result.outcome == UNAVAILABLE and "EndpointConnectionError" in result.error
