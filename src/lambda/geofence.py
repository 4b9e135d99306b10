"""Moved to flight_domain.geofence. This top-level name stays only for infra/alerts_recount.py; delete
it when that imports flight_domain.geofence."""
from flight_domain.geofence import Fence, parse_fences  # noqa: F401
