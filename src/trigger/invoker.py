"""Synchronous Lambda invocation (InvocationType RequestResponse) with the outcome classified for retries.

botocore's own retries are off: the trigger decides what to retry and for how long, because a
record failure (the function said no) and an infrastructure failure (throttled, endpoint down)
must be handled differently. The read timeout is longer than the function's own timeout, so a
slow function ends as the function's timeout error (a FunctionError), never as a client timeout.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

OK = "ok"
FUNCTION_ERROR = "function_error"  # the function ran and failed (Unhandled/Handled): counts as a retry
THROTTLED = "throttled"            # 429: not a record failure
UNAVAILABLE = "unavailable"        # connection refused/reset, timeouts, 5xx: not a record failure
TOO_LARGE = "too_large"            # 413 RequestTooLargeException: split the batch
REJECTED = "rejected"              # other 4xx (function missing, access denied): not a record failure

INFRASTRUCTURE = (THROTTLED, UNAVAILABLE, REJECTED)

_THROTTLE_CODES = {"TooManyRequestsException", "ThrottlingException", "Throttling", "ThrottledException"}
_UNAVAILABLE_CODES = {"ServiceException", "ResourceNotReadyException", "ResourceConflictException",
                      "EC2ThrottledException", "EC2UnexpectedException", "ENILimitReachedException",
                      "ServiceUnavailable", "InternalFailure", "InternalServerError"}
DEFAULT_FUNCTION_TIMEOUT_S = 900  # Lambda's maximum, used when the function cannot be asked


@dataclass(frozen=True)
class InvokeResult:
    outcome: str
    payload: bytes = b""
    function_error: str | None = None
    status_code: int | None = None
    executed_version: str | None = None
    error: str | None = None
    latency_s: float = 0.0

    @property
    def is_infrastructure(self) -> bool:
        return self.outcome in INFRASTRUCTURE


def classify_client_error(code: str, status: int | None) -> str:
    if code in _THROTTLE_CODES or status == 429:
        return THROTTLED
    if code == "RequestTooLargeException" or status == 413:
        return TOO_LARGE
    if code in _UNAVAILABLE_CODES or (status is not None and status >= 500):
        return UNAVAILABLE
    return REJECTED


class LambdaInvoker:
    """Callable: payload bytes -> InvokeResult. Thread-safe; one boto3 client shared by all workers."""

    def __init__(self, function_name: str, qualifier: str | None = None, *, client=None,
                 max_pool_connections: int = 10, read_timeout_s: float | None = None,
                 connect_timeout_s: float = 5.0, endpoint_url: str | None = None,
                 region_name: str | None = None) -> None:
        self.function_name = function_name
        self.qualifier = qualifier
        self._client = client
        self._lock = threading.Lock()
        self._max_pool = max_pool_connections
        self._read_timeout = read_timeout_s
        self._connect_timeout = connect_timeout_s
        self._endpoint_url = endpoint_url
        self._region = region_name

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self):
        import boto3
        from botocore.config import Config

        read_timeout = self._read_timeout or (self._function_timeout() + 30)
        config = Config(
            max_pool_connections=self._max_pool,
            read_timeout=read_timeout,
            connect_timeout=self._connect_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            tcp_keepalive=True,
        )
        logger.info("lambda client: function=%s qualifier=%s read_timeout=%.0fs pool=%d",
                    self.function_name, self.qualifier, read_timeout, self._max_pool)
        return boto3.client("lambda", config=config, endpoint_url=self._endpoint_url, region_name=self._region)

    def _function_timeout(self) -> int:
        """The function's configured timeout, so the read timeout can exceed it; 900 s if unknown."""
        import boto3
        from botocore.config import Config

        probe = boto3.client("lambda", endpoint_url=self._endpoint_url, region_name=self._region,
                             config=Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=10))
        kwargs = {"FunctionName": self.function_name}
        if self.qualifier:
            kwargs["Qualifier"] = self.qualifier
        try:
            return int(probe.get_function_configuration(**kwargs).get("Timeout") or DEFAULT_FUNCTION_TIMEOUT_S)
        except Exception as exc:  # endpoint down or function not deployed yet: assume the maximum
            logger.warning("could not read the timeout of %s (%s); assuming %d s",
                           self.function_name, exc, DEFAULT_FUNCTION_TIMEOUT_S)
            return DEFAULT_FUNCTION_TIMEOUT_S

    def __call__(self, payload: bytes) -> InvokeResult:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs = {"FunctionName": self.function_name, "InvocationType": "RequestResponse", "Payload": payload}
        if self.qualifier:
            kwargs["Qualifier"] = self.qualifier
        start = time.perf_counter()
        try:
            resp = self.client.invoke(**kwargs)
            body = resp["Payload"].read()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = err.get("Code", "")
            return InvokeResult(classify_client_error(code, status), status_code=status,
                                error=f"{code}: {err.get('Message', '')}", latency_s=time.perf_counter() - start)
        except BotoCoreError as exc:
            # EndpointConnectionError, ConnectionClosedError, Read/ConnectTimeoutError, ...
            return InvokeResult(UNAVAILABLE, error=f"{type(exc).__name__}: {exc}",
                                latency_s=time.perf_counter() - start)
        except OSError as exc:  # a socket error botocore did not wrap
            return InvokeResult(UNAVAILABLE, error=f"{type(exc).__name__}: {exc}",
                                latency_s=time.perf_counter() - start)
        function_error = resp.get("FunctionError")
        return InvokeResult(FUNCTION_ERROR if function_error else OK, payload=body, function_error=function_error,
                            status_code=resp.get("StatusCode"), executed_version=resp.get("ExecutedVersion"),
                            latency_s=time.perf_counter() - start)
