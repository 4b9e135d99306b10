"""Moved to flight_domain.alert_rules. This top-level name stays only for importers outside the move
(tracker/api/routes/alerts.py, infra/alerts_recount.py, tests/integration/test_tracker_alerts_api.py
and test_map_alerts_browser.py); delete it when they import flight_domain.alert_rules."""
from flight_domain.alert_rules import ALERT_TYPES, AircraftState, Alert, Watchlist, fold, observe  # noqa: F401
