"""Security: no credential in the repository or the logs, least privilege for the function, and Kafka
TLS/SASL settings that really reach every Kafka client the producer and the trigger create."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import kafka
import pytest
from kafka.net.sasl import SASL_MECHANISMS

import flight_handler
from flight_settings import FunctionSettings
from infra.deploy import aws_resources
from opensky_standin import OpenSkyStandIn, expired_token, ok, raw, status
from pipeline_common.logs import ConsoleFormatter, JsonFormatter
from producer.runner import ProducerError, SimulatedClock, build_sink, run_producer
from producer.settings import ProducerConfig
from saved_events import FIXTURES, load_event
from trigger import Trigger, TriggerConfig
from trigger.on_failure import KafkaDestination

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- the repository
# Values that look like credentials but are documented test placeholders (docs/RELIABILITY.md,
# "Credentials"): the local stack's fake AWS keys, and the dummy secrets unit tests feed to the
# code to prove it masks them. Anything else that matches a pattern below fails the test.
PLACEHOLDERS = {
    "test": "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for MiniStack/LocalStack (Makefile, stack, demo)",
    "testing": "fake AWS credentials of the moto-based unit tests (tests/conftest.py)",
    "...": "elided values in documentation examples",
    "abcdefghijkl": "dummy client_secret in tests/unit/test_kafka_settings.py (masking test)",
    "ab…kl": "the masked form of that dummy, as the log line must show it",
    "s3cret-pw": "dummy SASL password in tests/unit/test_kafka_settings.py",
    "hunter2-secret": "dummy SASL password in tests/unit/test_kafka_settings.py (masking test)",
    "tok-1": "dummy OAuth2 access token in tests/unit/test_opensky_client.py",
    "Bearer": "the OAuth2 token_type, not a credential",
    "s3cr3t-client-secret-value": "dummy OpenSky secret in tests/unit/test_opensky_client.py",
    "standin-client-secret-0123456789abcdef": "dummy OpenSky secret in tests/integration/test_faults.py",
    "unit-test-secret-9f8e7d6c5b4a": "dummy OpenSky secret in this file",
    "sasl-password-never-logged-42": "dummy SASL password in this file",
    "the-right-one": "dummy OpenSky secret the stand-in accepts, in this file",
}

# Each pattern's first group is the credential value (checked against PLACEHOLDERS); a pattern
# without a group matches only real key material, which has no placeholder.
CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})\b"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,})\b"),
    "Slack token": re.compile(r"\b(xox[abprs]-[A-Za-z0-9-]{10,})"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s:@'\"$]{3,})@"),
    # password = "x", "secret": "x", client_secret="x" ... with a quoted literal value
    "quoted secret value": re.compile(
        r"(?i)[\w.-]*(?:password|passwd|secret|token|api_?key)[\w.-]*[\"']?\s*[:=]\s*[\"']([^\"'\s$<>{}]{3,})[\"']"),
    # PASSWORD=x / OPENSKY_CLIENT_SECRET=x in shell, Makefile, .env or Markdown
    "secret in an assignment": re.compile(
        r"\b[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY)[A-Z0-9_]*\s*[?:]?=\s*([^\s$'\"<>{}()]{4,})"),
}


def scan(text: str) -> list[tuple[str, str]]:
    """(pattern name, value) for every credential-looking value that is not a documented placeholder."""
    found = []
    for name, pattern in CREDENTIAL_PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.group(1) if pattern.groups else match.group(0)
            # URLs and ARNs name where a secret lives (a URL carrying one is caught on its own).
            if value not in PLACEHOLDERS and not value.startswith(("http://", "https://", "arn:")):
                found.append((name, value))
    return found


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_holds_a_credential():
    findings = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files (zips are not tracked) and files deleted in the work tree
        findings += [f"{path.relative_to(ROOT)}: {name}: {value[:12]}…" for name, value in scan(text)]
    assert not findings, "credential-looking values in tracked files:\n" + "\n".join(findings)


@pytest.mark.parametrize("planted, kind", [
    ("aws_access_key_id = " + "AKIA" + "Q" * 16, "AWS access key id"),
    ("aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY", "AWS secret access key"),
    ("-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE...", "private key"),
    ('KAFKA_SASL_PASSWORD="' + "hunter" + '22"', "quoted secret value"),
    ("export OPENSKY_CLIENT_" + "SECRET=" + "Zx81kq0", "secret in an assignment"),
    ("password" + ': "' + 'correct-horse"', "quoted secret value"),
    ("sasl://flights:" + "pa55word" + "@broker:9096", "credentials in a URL"),
])
def test_the_scan_finds_planted_credentials(planted, kind):
    # The patterns are assembled from pieces so that this file itself stays clean.
    assert kind in [name for name, _ in scan(planted)]


def test_placeholders_and_references_are_not_findings():
    text = "\n".join([
        "export AWS_SECRET_ACCESS_KEY ?= test", "OPENSKY_CLIENT_SECRET=...", 'client_secret=s.client_secret',
        "KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD}", "password=self.sasl_plain_password",
        'aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test")'])
    assert scan(text) == []


def test_runtime_state_and_local_env_files_are_never_committed():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".state/" in ignored and ".env" in ignored  # logs, demo output, broker data; local secrets
    assert not [p for p in tracked_files() if p.name == ".env" or ".state" in p.relative_to(ROOT).parts]


# --------------------------------------------------------------------------- the producer's logs
SECRET = "unit-test-secret-9f8e7d6c5b4a"
SNAPSHOT = json.loads((FIXTURES / "opensky_states_all.json").read_text())


@pytest.fixture
def all_log_lines():
    """Every record from every logger at DEBUG, rendered by both of the project's formatters."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    root = logging.getLogger()
    keep, old_level = Keep(level=logging.DEBUG), root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    loggers = {name: logging.getLogger(name).level for name in ("urllib3", "requests", "producer")}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield lambda: "\n".join(f(r) for r in records for f in (JsonFormatter().format, ConsoleFormatter().format))
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)


def test_producer_never_logs_the_opensky_secret_or_any_token(tmp_path, all_log_lines):
    # GIVEN an OpenSky stand-in that issues tokens, expires one, fails and answers garbage
    script = [ok(SNAPSHOT), expired_token(), status(500), ok(dict(SNAPSHOT, time=SNAPSHOT["time"] + 10)),
              raw(b'{"time": 1, "states": [['), status(403, b"forbidden")]
    with OpenSkyStandIn(script, client_id="unit-client-id", client_secret=SECRET) as opensky:
        config = ProducerConfig.from_env(
            {}, source="opensky", max_ticks=4, export_csv=str(tmp_path / "out.csv"),
            opensky={"api_url": opensky.api_url, "token_url": opensky.token_url, "client_id": "unit-client-id",
                     "client_secret": SECRET, "backoff_base_s": 0.0})
        # WHEN the producer runs through all of it, at DEBUG, until the 403 stops it
        with pytest.raises(ProducerError) as stopped:
            run_producer(config, clock=SimulatedClock(1_700_000_000.0))
        tokens = list(opensky.tokens)

    # THEN neither the secret nor any token appears in any log line or the final error
    text = all_log_lines() + "\n" + str(stopped.value)
    assert len(tokens) == 2 and "OpenSky answered 401; renewing the access token" in text
    assert SECRET not in text
    assert not [t for t in tokens if t in text]
    assert "un…id" in text  # the client id is masked too, but recognisable
    assert (tmp_path / "out.csv").read_text().count("\n") > len(SNAPSHOT["states"])


def test_rejected_credentials_error_does_not_echo_the_secret(tmp_path):
    with OpenSkyStandIn([ok(SNAPSHOT)], client_id="unit-client-id", client_secret="the-right-one") as opensky:
        config = ProducerConfig.from_env(
            {}, source="opensky", max_ticks=1, export_csv=str(tmp_path / "out.csv"),
            opensky={"api_url": opensky.api_url, "token_url": opensky.token_url, "client_id": "unit-client-id",
                     "client_secret": SECRET})
        with pytest.raises(ProducerError, match="token endpoint rejected client_id un…id") as stopped:
            run_producer(config, clock=SimulatedClock(0.0))
    assert SECRET not in str(stopped.value)


def test_cli_logs_at_debug_never_show_kafka_or_aws_secrets(tmp_path):
    """The real entry points, with a SASL password and an AWS secret key in their environment and no
    broker to reach: whatever they log about failing to connect must not carry either secret."""
    password, aws_secret = "sasl-password-never-logged-42", "unit" + "AwsSecretKeyThatIsNotRealAtAll00"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json",
           "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "flights",
           "KAFKA_SASL_PASSWORD": password, "AWS_SECRET_ACCESS_KEY": aws_secret, "AWS_ACCESS_KEY_ID": "test",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "TRIGGER_CONNECT_TIMEOUT_S": "2"}
    runs = [subprocess.run([sys.executable, "-m", "trigger", "--duration", "3"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60),
            subprocess.run([sys.executable, "-m", "producer", "--source", "synthetic", "--aircraft", "5",
                            "--max-ticks", "1", "--connect-timeout", "1"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)]
    output = "\n".join(r.stdout + r.stderr for r in runs)
    # both really ran, tried to connect with these settings, and said so
    assert [r.returncode for r in runs] == [1, 1]
    assert all("Kafka broker at 127.0.0.1:9" in r.stderr and "not reachable" in r.stderr for r in runs)
    assert password not in output and aws_secret not in output


# --------------------------------------------------------------------------- least privilege
class RecordingClient:
    """Stands in for a boto3 client: records each API call and answers like SNS/CloudWatch would."""

    def __init__(self, service: str, calls: list):
        self.service, self.calls = service, calls

    def publish_batch(self, **kwargs):
        self.calls.append((self.service, "PublishBatch", kwargs))
        return {"Successful": [{"Id": e["Id"], "MessageId": "m"} for e in kwargs["PublishBatchRequestEntries"]],
                "Failed": []}

    def put_metric_data(self, **kwargs):
        self.calls.append((self.service, "PutMetricData", kwargs))
        return {}

    def __getattr__(self, name):
        raise AssertionError(f"the function called {self.service}.{name}, which this test (and the IAM "
                             "policy) does not know about: add it to both or remove the call")


# What each API call needs in IAM (PublishBatch is authorised by sns:Publish).
IAM_ACTION = {("sns", "PublishBatch"): "sns:Publish", ("sns", "Publish"): "sns:Publish",
              ("cloudwatch", "PutMetricData"): "cloudwatch:PutMetricData"}
# Written by the Lambda runtime itself, not by the function's code.
RUNTIME_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_execution_policy_allows_exactly_what_the_function_calls(monkeypatch):
    # GIVEN the function's own code, with every boto3 client it creates recorded
    created, calls = [], []
    monkeypatch.setattr(flight_handler, "_client", lambda service, _settings: created.append(service)
                        or RecordingClient(service, calls))
    topic_arn = "arn:aws:sns:eu-west-1:123456789012:FlightNotifications"
    runtime = flight_handler.configure(FunctionSettings(sns_topic_arn=topic_arn, metrics_namespace="FlightPipeline",
                                                 function_name="flight-processor"))
    try:
        # WHEN it handles a batch with flights in the air, on the ground and one unreadable record
        result = flight_handler.process_event(load_event("esm_flights_self_managed.json"), runtime)
    finally:
        flight_handler.reset()
    assert result["published"] > 0 and result["failed"] > 0

    # THEN the policy grants exactly the actions those calls need, on exactly what they touch
    settings = aws_resources.AwsResourceSettings(function_name="flight-processor", metrics_namespace="FlightPipeline")
    policy = aws_resources.execution_policy(topic_arn, settings)
    granted = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            assert "*" not in action
            granted[action] = statement
    used = {IAM_ACTION[(service, op)] for service, op, _ in calls}
    assert sorted(created) == ["cloudwatch", "sns"]
    assert set(granted) == used | RUNTIME_ACTIONS
    assert {kw["TopicArn"] for service, _, kw in calls if service == "sns"} == {granted["sns:Publish"]["Resource"]}
    namespaces = {kw["Namespace"] for service, _, kw in calls if service == "cloudwatch"}
    assert granted["cloudwatch:PutMetricData"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": namespaces.pop()}} and not namespaces
    assert granted["logs:PutLogEvents"]["Resource"].endswith(":log-group:/aws/lambda/flight-processor:*")


# --------------------------------------------------------------------------- Kafka TLS / SASL
SECURE_SETTINGS = {
    "SCRAM over TLS": {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                       "KAFKA_SASL_USERNAME": "flights", "KAFKA_SASL_PASSWORD": "sasl-password-never-logged-42",
                       "KAFKA_SSL_CAFILE": "/etc/ssl/certs/ca-certificates.crt"},
    "MSK IAM": {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"},
    "mutual TLS": {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/certs/ca.pem",
                   "KAFKA_SSL_CERTFILE": "/certs/client.pem", "KAFKA_SSL_KEYFILE": "/certs/client.key",
                   "KAFKA_SSL_CHECK_HOSTNAME": "false"},
}
EXPECTED_KWARGS = {
    "SCRAM over TLS": {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "flights", "sasl_plain_password": "sasl-password-never-logged-42",
                       "ssl_cafile": "/etc/ssl/certs/ca-certificates.crt", "ssl_check_hostname": True},
    "MSK IAM": {"security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM", "ssl_check_hostname": True},
    "mutual TLS": {"security_protocol": "SSL", "ssl_cafile": "/certs/ca.pem", "ssl_certfile": "/certs/client.pem",
                   "ssl_keyfile": "/certs/client.key", "ssl_check_hostname": False},
}


class Captured(Exception):
    """Raised by the patched client constructors once they have recorded their arguments."""


@pytest.fixture
def kafka_constructors(monkeypatch):
    """KafkaProducer/KafkaConsumer constructors that record their keyword arguments instead of connecting."""
    seen: dict[str, list[dict]] = {"KafkaProducer": [], "KafkaConsumer": []}

    def recorder(name):
        def init(self, *args, **kwargs):
            seen[name].append(kwargs)
            raise Captured(name)
        return init

    for name in seen:
        monkeypatch.setattr(getattr(kafka, name), "__init__", recorder(name))
        # The half-made object is collected later: its close-on-delete has nothing to close.
        monkeypatch.setattr(getattr(kafka, name), "__del__", lambda self: None, raising=False)
    return seen


@pytest.mark.parametrize("setup", sorted(SECURE_SETTINGS))
def test_producer_and_trigger_pass_tls_and_sasl_settings_to_every_kafka_client(setup, kafka_constructors,
                                                                               monkeypatch):
    # GIVEN only environment variables, as a deployment sets them
    for key in [k for k in os.environ if k.startswith(("KAFKA_", "TRIGGER_", "PRODUCER_"))]:
        monkeypatch.delenv(key)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "b-1.flights.example:9096,b-2.flights.example:9096", **SECURE_SETTINGS[setup],
           "TRIGGER_GROUP_INSTANCE_ID": "trigger-host-1", "TRIGGER_SESSION_TIMEOUT_S": "20"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # WHEN the producer's sink, the trigger's consumer and its dead-letter producer are created
    with pytest.raises(Captured):
        build_sink(ProducerConfig.from_env(), stop_event=None)
    trigger = Trigger(TriggerConfig.from_env())
    with pytest.raises(Captured):
        trigger.run(duration=1)
    [destination] = [d for d in trigger._on_failure.destinations if isinstance(d, KafkaDestination)]
    with pytest.raises(Captured):
        destination._get_producer()

    # THEN each got the brokers and every security setting, under names kafka-python knows
    clients = [("producer", "KafkaProducer", kafka_constructors["KafkaProducer"][0]),
               ("trigger consumer", "KafkaConsumer", kafka_constructors["KafkaConsumer"][0]),
               ("trigger dead-letter producer", "KafkaProducer", kafka_constructors["KafkaProducer"][1])]
    for who, cls, kwargs in clients:
        assert kwargs["bootstrap_servers"] == ["b-1.flights.example:9096", "b-2.flights.example:9096"], who
        assert {k: kwargs.get(k) for k in EXPECTED_KWARGS[setup]} == EXPECTED_KWARGS[setup], who
        unknown = set(kwargs) - set(getattr(kafka, cls).DEFAULT_CONFIG)
        assert not unknown, f"{who} passes settings kafka-python does not know: {unknown}"
        if "sasl_mechanism" in kwargs:
            assert kwargs["sasl_mechanism"] in SASL_MECHANISMS
    # and the consumer's group membership settings (static membership for fast restarts) arrive too
    consumer = kafka_constructors["KafkaConsumer"][0]
    assert (consumer["group_instance_id"], consumer["session_timeout_ms"]) == ("trigger-host-1", 20_000)
    assert consumer["heartbeat_interval_ms"] * 3 <= consumer["session_timeout_ms"]
