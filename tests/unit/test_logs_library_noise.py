"""A person's console shows the pipeline's own lines; kafka-python's internals go to KAFKA_CLIENT_LOG."""
import json
import logging

import pytest

from pipeline_common.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_logging():
    """configure_logging replaces the root's handlers (pytest's capture among them): put them back."""
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    saved = (root.handlers[:], root.level, kafka.handlers[:], kafka.level, kafka.propagate)
    yield
    for handler in kafka.handlers:
        handler.close()
    root.handlers[:], kafka.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    kafka.setLevel(saved[3])
    kafka.propagate = saved[4]


def library_noise() -> None:
    """The lines `make demo` used to print before its summary (kafka/net/manager.py, kafka/net/selector.py)."""
    logging.getLogger("kafka.net.manager").error("Bootstrap failed: %s", "KafkaTimeoutError")
    logging.getLogger("kafka.net.selector").warning(
        "Task %r ran for %.3fs (>%.3fs threshold). It is blocking the event loop", "<Task>", 0.167, 0.1)


def test_a_console_gets_our_broker_trouble_and_the_file_gets_the_library_lines(capsys, tmp_path):
    # GIVEN logs for a person (console lines) and a library log in a folder that does not exist yet
    library_log = tmp_path / "logs" / "kafka-client.log"
    assert configure_logging("WARNING", "console", library_log) == library_log
    # WHEN kafka-python reports its internals and our code reports the broker trouble it meets
    library_noise()
    logging.getLogger("trigger.runner").warning("Kafka error while polling (%s); retrying", "NoBrokersAvailable",
                                                extra={"topic": "aviation-data"})
    # THEN the console shows our line, with its topic, and none of kafka-python's
    console = capsys.readouterr().err
    assert "WARNING trigger.runner  Kafka error while polling (NoBrokersAvailable); retrying  topic=aviation-data" \
        in console
    assert "kafka.net" not in console and "Bootstrap failed" not in console and "blocking" not in console
    # AND the library's lines are in the file, as JSON with the process that wrote them
    lines = [json.loads(line) for line in library_log.read_text().splitlines()]
    assert [(d["level"], d["logger"]) for d in lines] == [("ERROR", "kafka.net.manager"),
                                                          ("WARNING", "kafka.net.selector")]
    assert lines[0]["msg"] == "Bootstrap failed: KafkaTimeoutError" and isinstance(lines[0]["pid"], int)


def test_the_library_file_is_only_created_when_the_library_has_something_to_say(tmp_path):
    library_log = tmp_path / "kafka-client.log"
    configure_logging("WARNING", "console", library_log)
    logging.getLogger("kafka.conn").info("connecting to localhost:9092")  # below the library's level
    assert not library_log.exists()


def test_json_lines_keep_the_library_warnings_in_the_same_stream(capsys, tmp_path):
    # GIVEN JSON lines (a log file already: `make soak`, a service's log)
    library_log = tmp_path / "kafka-client.log"
    assert configure_logging("INFO", "json", library_log) is None
    # WHEN kafka-python warns, and chats at INFO
    library_noise()
    logging.getLogger("kafka.conn").info("connected")
    # THEN its warnings and errors are lines of the same stream; its INFO chatter is not
    docs = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [d["logger"] for d in docs] == ["kafka.net.manager", "kafka.net.selector"]
    assert not library_log.exists()


def test_configuring_again_routes_the_library_back_to_the_console(capsys, tmp_path):
    configure_logging("WARNING", "console", tmp_path / "kafka-client.log")
    configure_logging("WARNING", "json")
    logging.getLogger("kafka.net.manager").error("Bootstrap failed: %s", "KafkaTimeoutError")
    assert "Bootstrap failed: KafkaTimeoutError" in capsys.readouterr().err
    assert logging.getLogger("kafka").handlers == []


def test_kafka_client_log_names_the_file_when_no_argument_does(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_CLIENT_LOG", str(tmp_path / "elsewhere.log"))
    assert configure_logging("WARNING", "console") == tmp_path / "elsewhere.log"


def test_a_folder_that_cannot_be_created_keeps_the_library_on_the_console(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert configure_logging("WARNING", "console", blocker / "logs" / "kafka-client.log") is None
    library_noise()
    err = capsys.readouterr().err
    assert "cannot create" in err and "Bootstrap failed: KafkaTimeoutError" in err
