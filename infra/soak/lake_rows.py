"""The soak's check of the lake: the session's archiver wrote the run's records into the Iceberg table exactly
once. After every part stopped (the archiver commits its buffer on SIGTERM), the rows of the run's Kafka offset
range are read back from the table by this process and compared key for key with the distinct positions of
the tracker's recount (the same read of Kafka, infra/soak/tracker_rows.py): nothing missing, nothing doubled.
The comparison and the row filter are `make demo`'s (infra/demo/lake_recount.py); only the verdict is here.
"""
from __future__ import annotations

import logging
import time

from infra.demo.lake_recount import caught_up, equal_detail, read_run
from infra.demo.tracker_recount import TrackerRecount
from lakehouse.catalog import committed_offsets, load_catalog
from lakehouse.settings import LakeSettings

logger = logging.getLogger(__name__)

ROWS_CHECK = "the lake holds every distinct position in Kafka exactly once"
REJECTS_CHECK = "every malformed record is in the lake's rejects table"
OFFSETS_CHECK = "the lake's committed offsets reach the end of the run"


def reconcile(found: TrackerRecount, topic: str,
              settings: LakeSettings | None = None) -> tuple[dict, list[tuple[str, bool, str]]]:
    """Figures for the report and the checks; a table that cannot be read fails the checks, with the reason."""
    began = time.monotonic()
    settings = settings or LakeSettings.from_env()
    name = ".".join(settings.identifier)
    try:
        catalog = load_catalog(settings)
        table = catalog.load_table(settings.identifier)
        offsets = committed_offsets(table, topic)
        _, comparison, rejects = read_run(catalog, table, settings, topic, found.ranges, found.keys)
    except Exception as exc:  # noqa: BLE001 - an unreadable lake fails the check with the reason
        logger.warning("lake recount failed: %s", exc)
        return ({"table": name, "error": f"{type(exc).__name__}: {exc}"},
                [(ROWS_CHECK, False, f"could not read {name}: {type(exc).__name__}: {exc}")])
    figures = {"table": name, "rows": comparison.rows, "distinct_positions": comparison.distinct,
               "missing": comparison.missing, "not_in_run": comparison.extra, "doubled": comparison.doubled,
               "rejects": rejects, "malformed": found.malformed,
               "committed_offsets": {str(p): o for p, o in sorted(offsets.items())},
               "recount_s": round(time.monotonic() - began, 1)}
    ends = {str(p): end for p, (_, end) in sorted(found.ranges.items())}
    return figures, [
        (ROWS_CHECK, comparison.ok, comparison.detail()),
        (REJECTS_CHECK, rejects == found.malformed, equal_detail(rejects, found.malformed) + " malformed in Kafka"),
        (OFFSETS_CHECK, caught_up(offsets, found.ranges), f"committed {figures['committed_offsets']}, run ends {ends}"),
    ]
