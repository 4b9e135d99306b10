"""Kafka client settings from the environment: TLS and SASL options, fail-fast errors naming the variable."""
import logging

import pytest

from pipeline_common.kafka_client import KafkaSettings
from pipeline_common.logs import JsonFormatter
from pipeline_common.settings import ConfigError, env_bool, env_int


def test_defaults_are_a_local_plaintext_broker():
    assert KafkaSettings.from_env(env={}).client_kwargs() == {
        "bootstrap_servers": ["localhost:9092"], "security_protocol": "PLAINTEXT"}


def test_sasl_scram_over_tls_is_passed_to_kafka_python():
    env = {"KAFKA_BOOTSTRAP_SERVERS": "b-1.example:9096,b-2.example:9096", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
           "KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "trigger",
           "KAFKA_SASL_PASSWORD": "s3cret-pw", "KAFKA_SSL_CAFILE": "/etc/ssl/ca.pem"}
    kwargs = KafkaSettings.from_env(env=env).client_kwargs()
    assert kwargs == {"bootstrap_servers": ["b-1.example:9096", "b-2.example:9096"], "security_protocol": "SASL_SSL",
                      "ssl_check_hostname": True, "ssl_cafile": "/etc/ssl/ca.pem", "sasl_mechanism": "SCRAM-SHA-512",
                      "sasl_plain_username": "trigger", "sasl_plain_password": "s3cret-pw"}


def test_msk_iam_needs_no_password():
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"}
    assert KafkaSettings.from_env(env=env).client_kwargs()["sasl_mechanism"] == "AWS_MSK_IAM"


def test_mutual_tls_needs_cert_and_key():
    with pytest.raises(ConfigError, match="KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"):
        KafkaSettings.from_env(env={"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"})


@pytest.mark.parametrize("env, message", [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' is not one of"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM is required"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "is not one of PLAIN"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_USERNAME and"),
    ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SECURITY_PROTOCOL is not SASL"),
])
def test_bad_security_settings_fail_fast_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        KafkaSettings.from_env(env=env)


def test_repr_and_logs_never_show_the_password():
    settings = KafkaSettings.from_env(env={"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN",
                                           "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "hunter2-secret"})
    assert "hunter2" not in repr(settings)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "connect %s", (settings,), None)
    record.client_secret = "abcdefghijkl"
    line = JsonFormatter().format(record)
    assert "hunter2" not in line and "abcdefghijkl" not in line and '"client_secret": "ab…kl"' in line


def test_env_helpers_name_the_variable():
    with pytest.raises(ConfigError, match="TRIGGER_BATCH_SIZE='ten' is not an integer"):
        env_int("TRIGGER_BATCH_SIZE", 100, env={"TRIGGER_BATCH_SIZE": "ten"})
    with pytest.raises(ConfigError, match="TRIGGER_BATCH_SIZE=20000 is above the maximum 10000"):
        env_int("TRIGGER_BATCH_SIZE", 100, env={"TRIGGER_BATCH_SIZE": "20000"}, maximum=10000)
    with pytest.raises(ConfigError, match="X='maybe' is not a boolean"):
        env_bool("X", False, env={"X": "maybe"})
    assert env_int("TRIGGER_BATCH_SIZE", 100, env={}) == 100
