"""Moved to flight_domain.flight_transform. This top-level name stays only for importers outside the
move (infra/observe.py, infra/alerts_recount.py, infra/bench/sink_ceiling.py); delete it when they
import flight_domain.flight_transform."""
from flight_domain.flight_transform import InvalidState, evaluate  # noqa: F401
