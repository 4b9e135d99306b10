"""The benchmark harness still works: one tiny section through `python -m infra.bench.run` on the real stack."""
import json

import pytest

from infra.bench import run


@pytest.mark.slow  # about 80 s: it deploys its own functions and measures
def test_sink_ceiling_section_writes_a_well_formed_positive_row(stack, tmp_path):
    # GIVEN the running stack and a report path of this test's own (docs/BENCHMARKS.md stays untouched)
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"

    # WHEN only the sink-ceiling section runs, with 200 messages per thread count
    code = run.main(["--sections", "sink", "--sink-messages", "200", "--out", str(report), "--json", str(raw)])

    # THEN it succeeds, and each row says every message reached the subscriber queue at a positive rate
    assert code == 0
    results = json.loads(raw.read_text())
    assert results["errors"] == {}
    rows = results["sink"]["rows"]
    assert [(r["threads"], r.get("processes")) for r in rows] == [(1, None), (4, None), (1, 4)]
    for row in rows:
        assert row["messages"] == 200
        assert row["delivered"] == 200 and row["failed"] == 0
        assert row["seconds"] > 0 and row["rate"] > 0
        assert row["cpu"]["wall_s"] > 0 and row["cpu"]["cpu_s"]["MiniStack"] > 0
        assert row["cpu"]["cpu_s"]["sink clients"] > 0
    # the target's ceiling is the best of the 1- and 4-thread rows; several processes are reported beside it
    assert results["sink"]["ceiling"] == max(r["rate"] for r in rows[:2])
    assert results["sink"]["multi_process"] == rows[2]["rate"]
    # AND the machine and versions are recorded, and the report shows the row next to the targets
    assert results["machine"]["cores"] >= 1 and results["machine"]["versions"]["Kafka broker"] != ""
    text = report.read_text()
    assert "## 1. Sink ceiling" in text and "## Targets" in text
    assert "| 1 process, 1 thread(s) | 200 |" in text and "| 4 processes | 200 |" in text
