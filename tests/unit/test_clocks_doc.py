"""docs/RELIABILITY.md "Clocks and time boundaries" names a test for each behaviour: each one exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cited_tests() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "RELIABILITY.md").read_text()
    section = text.split("## Clocks and time boundaries", 1)[1].split("\n## ", 1)[0]
    cited, current = [], None
    # `tests/x.py::name` names a file and a test; a following `::other` is another test of that file
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", section):
        current = path or current
        cited.append((current, name))
    return cited


def test_every_test_the_clocks_table_names_exists():
    cited = cited_tests()
    assert len(cited) >= 30
    missing = [f"{path}::{name}" for path, name in cited
               if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)]
    assert missing == []
