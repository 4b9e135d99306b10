"""CSV export of a source and replay of the file in micro-batches."""
from __future__ import annotations

import csv

import pytest

from producer.__main__ import main
from producer.replay import CsvSink, read_batches
from producer.runner import SimulatedClock, run_producer
from producer.settings import ProducerConfig
from producer.state_vector import FIELDS, MESSAGE_FIELDS
from sinks import ListSink

T0 = 1_700_000_000.0


@pytest.fixture
def exported(tmp_path):
    """3 ticks of 200 synthetic aircraft, as seen by a list sink and as written by --export-csv."""
    seen = ListSink()
    cfg = ProducerConfig(source="synthetic", aircraft=200, seed=9, max_ticks=3, start_time=T0)
    run_producer(cfg, sink=seen, clock=SimulatedClock(T0))
    path = tmp_path / "traffic.csv"
    cfg = ProducerConfig(source="synthetic", aircraft=200, seed=9, max_ticks=3, start_time=T0,
                         export_csv=str(path))
    stats = run_producer(cfg)
    assert stats.published == 600
    assert all(key == value["icao24"] for key, value in seen.messages)
    return path, seen.values


def test_export_writes_a_header_and_one_row_per_state(exported):
    path, messages = exported
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(MESSAGE_FIELDS)
    assert len(rows) == 1 + len(messages) == 601


def test_replay_gives_back_exactly_what_was_exported_in_micro_batches(exported):
    path, original = exported
    sink = ListSink()
    cfg = ProducerConfig(source="replay", replay=str(path), batch_rows=250, batch_delay_s=2.0)
    stats = run_producer(cfg, sink=sink, clock=SimulatedClock(T0))
    assert stats.ticks == 3 and stats.published == 600 and stats.rejected == 0
    assert all(key == value["icao24"] for key, value in sink.messages)
    assert [{k: m[k] for k in FIELDS} for m in sink.values] == [{k: m[k] for k in FIELDS} for m in original]
    assert {m["source"] for m in sink.values} == {"replay"}
    # batches of 250, 250, 100 rows, one batch delay apart
    stamps = [m["fetched_at"] for m in sink.values]
    assert stamps[0] == T0 and stamps[250] == T0 + 2.0 and stamps[500] == T0 + 4.0 and stamps[599] == T0 + 4.0


def test_default_micro_batch_is_7000_rows_one_second_apart():
    cfg = ProducerConfig(source="replay", replay="x.csv")
    assert cfg.batch_rows == 7000 and cfg.effective_interval_s == 1.0


def test_bad_rows_in_a_replayed_file_are_rejected_with_line_and_reason(tmp_path, caplog):
    path = tmp_path / "hand-edited.csv"
    sink_file = CsvSink(path)
    good = {"icao24": "3c6444", "callsign": "DLH9LF", "origin_country": "Germany", "time_position": 1,
            "last_contact": 1, "longitude": 8.5, "latitude": 50.0, "baro_altitude": 11277.6, "on_ground": False,
            "velocity": 230.5, "true_track": 93.2, "vertical_rate": 0.0, "sensors": [1, 2], "geo_altitude": None,
            "squawk": "1000", "spi": False, "position_source": 0, "category": None, "source": "opensky",
            "fetched_at": 2.5}
    sink_file.send("3c6444", good)
    sink_file.send("zz", {**good, "icao24": "zz"})
    sink_file.send("3c6445", {**good, "icao24": "3c6445", "latitude": 95.0})
    sink_file.close()
    with open(path, "a") as fh:
        fh.write("3c6446,X,Germany,1,1,8.5,50.0,11000,maybe,1,1,0,,,,false,0,,opensky,1\n")
    batches = list(read_batches(path, batch_rows=10))
    assert len(batches) == 1
    states, rejected = batches[0]
    assert states == [{k: good[k] for k in FIELDS}]
    assert [line for line, _ in rejected] == [3, 4, 5]
    assert "icao24 must be 6 hex digits" in rejected[0][1]
    assert "latitude 95.0 is outside" in rejected[1][1]
    assert "on_ground must be true/false" in rejected[2][1]


def test_cli_exports_synthetic_traffic_to_csv(tmp_path, capsys):
    path = tmp_path / "cli.csv"
    code = main(["--source", "synthetic", "--aircraft", "50", "--seed", "3", "--export-csv", str(path),
                 "--ticks", "2", "--start-time", str(T0)])
    assert code == 0
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100 and {r["source"] for r in rows} == {"synthetic"}
    assert '"published": 100' in capsys.readouterr().out


def test_replaying_a_missing_file_is_a_clear_error(tmp_path, capsys):
    code = main(["--source", "replay", "--replay", str(tmp_path / "nope.csv")])
    assert code == 1
    err = capsys.readouterr().err  # main() logs to stderr
    assert "nope.csv does not exist" in err and "Traceback" not in err
