"""CSV recording and replay of state messages: export any source to a file, replay it in micro-batches.

One row per state, columns = the 18 OpenSky fields then source and fetched_at. Null is an empty
cell, booleans are true/false, sensors is a JSON array, floats use Python's shortest round-trip
repr, so export followed by replay gives back the same values.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Iterator

from .state_vector import (BOOL_FIELDS, FIELDS, FLOAT_FIELDS, INT_FIELDS, MESSAGE_FIELDS,
                           InvalidStateVector, parse_state_vector)

logger = logging.getLogger(__name__)

# Non-nullable text: an empty cell is an empty string, not null.
_TEXT_NOT_NULL = frozenset({"icao24", "origin_country", "source"})


def encode_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _decode_cell(name: str, cell: str) -> object:
    if cell == "":
        return "" if name in _TEXT_NOT_NULL else None
    if name in FLOAT_FIELDS or name == "fetched_at":
        return float(cell)
    if name in INT_FIELDS:
        return int(cell)
    if name in BOOL_FIELDS:
        if cell not in ("true", "false"):
            raise ValueError(f"{name} must be true/false, got {cell!r}")
        return cell == "true"
    if name == "sensors":
        return json.loads(cell)
    return cell


def decode_row(row: dict) -> dict:
    """One csv.DictReader row -> validated state dict (raises InvalidStateVector with the reason)."""
    missing = [name for name in FIELDS if name not in row]
    if missing:
        raise InvalidStateVector(f"missing column(s): {', '.join(missing)}")
    try:
        values = {name: _decode_cell(name, row[name] if row[name] is not None else "") for name in FIELDS}
    except (ValueError, TypeError) as exc:
        raise InvalidStateVector(f"bad cell: {exc}") from None
    # Same rules as live OpenSky data: a replayed file can be hand-edited or truncated.
    return parse_state_vector([values[name] for name in FIELDS])


class CsvSink:
    """Writes each message as a CSV row instead of publishing it (``--export-csv``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(MESSAGE_FIELDS)
        self.delivered = 0
        self.failed = 0

    def send(self, key: str, value: dict) -> None:
        self._writer.writerow([encode_cell(value.get(name)) for name in MESSAGE_FIELDS])
        self.delivered += 1

    def flush(self, timeout: float | None = None) -> None:
        self._file.flush()

    def close(self, timeout: float | None = None) -> None:
        if not self._file.closed:
            self._file.close()
            logger.info("wrote %d rows to %s", self.delivered, self.path)


def read_batches(path: str | os.PathLike, batch_rows: int) -> Iterator[tuple[list[dict], list[tuple[int, str]]]]:
    """Yield (states, rejected) per ``batch_rows`` data rows; rejected = [(line number, reason)]."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be >= 1")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return
        states: list[dict] = []
        rejected: list[tuple[int, str]] = []
        rows = 0
        for row in reader:
            rows += 1
            try:
                states.append(decode_row(row))
            except InvalidStateVector as exc:
                rejected.append((reader.line_num, exc.reason))
            if rows == batch_rows:
                yield states, rejected
                states, rejected, rows = [], [], 0
        if rows:
            yield states, rejected
