"""Flight tracker: a second consumer group on aviation-data that keeps the live picture, writes every
position to PostgreSQL and serves the REST/WebSocket API and the map."""
