-- Analytics over the positions history (seed 001's "silver" and "gold" layers):
--   positions_clean                 a view: positions with impossible values dropped, callsigns trimmed
--   analytics_hourly_country        aircraft and positions per hour and origin country
--   analytics_hourly_airline        ... per hour and airline (ICAO designator: first 3 letters of the callsign)
--   analytics_hourly_altitude_band  ... per hour and altitude band (the bands of GET /stats)
-- The three hourly tables are materialized views over the last 48 hours, refreshed by
-- `SELECT analytics_refresh();` (REFRESH ... CONCURRENTLY, so readers never wait). GET /analytics/hourly
-- calls it when the last refresh is older than a minute; run it by hand from `make psql` at any time.

CREATE OR REPLACE VIEW positions_clean AS
SELECT icao24,
       time_position,
       NULLIF(upper(btrim(callsign)), '') AS callsign,
       COALESCE(NULLIF(btrim(origin_country), ''), 'Unknown') AS origin_country,
       longitude,
       latitude,
       baro_altitude,
       geo_altitude,
       on_ground,
       velocity,
       true_track,
       vertical_rate,
       category,
       source
FROM positions
WHERE icao24 ~ '^[0-9a-f]{6}$'
  AND latitude BETWEEN -90 AND 90
  AND longitude BETWEEN -180 AND 180
  AND NOT (latitude = 0 AND longitude = 0)                        -- "null island": an unset position
  AND (baro_altitude IS NULL OR baro_altitude BETWEEN -460 AND 18300)   -- Dead Sea shore .. 60,000 ft
  AND (velocity IS NULL OR velocity BETWEEN 0 AND 700)            -- m/s; beyond Mach 2 is a decoding error
  AND (true_track IS NULL OR true_track BETWEEN 0 AND 360)
  AND (vertical_rate IS NULL OR abs(vertical_rate) <= 160);       -- m/s, about 31,000 ft/min

-- The altitude bands of GET /stats, from metres; NULL altitude in the air is its own band.
CREATE OR REPLACE FUNCTION altitude_band(baro_altitude_m real, on_ground boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN on_ground THEN 'ground'
    WHEN baro_altitude_m IS NULL THEN 'unknown'
    WHEN baro_altitude_m / 0.3048 < 10000 THEN '0-10k'
    WHEN baro_altitude_m / 0.3048 < 20000 THEN '10-20k'
    WHEN baro_altitude_m / 0.3048 < 30000 THEN '20-30k'
    WHEN baro_altitude_m / 0.3048 < 40000 THEN '30-40k'
    ELSE '40k+'
  END
$$;

-- An airline is the ICAO designator of a callsign like "DLH4AB": three letters then a digit.
-- General-aviation callsigns (registrations such as "DEABC" or "N123AB") have no airline.
CREATE OR REPLACE FUNCTION airline_prefix(callsign text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN callsign ~ '^[A-Z]{3}[0-9]' THEN substr(callsign, 1, 3) END
$$;

-- "flights" counts distinct aircraft (icao24) seen in the hour; "positions" counts clean positions.
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_hourly_country AS
SELECT date_trunc('hour', time_position) AS hour,
       origin_country AS country,
       count(DISTINCT icao24) AS flights,
       count(*) AS positions
FROM positions_clean
WHERE time_position >= date_trunc('hour', now()) - interval '48 hours'
GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS analytics_hourly_country_key ON analytics_hourly_country (hour, country);

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_hourly_airline AS
SELECT date_trunc('hour', time_position) AS hour,
       airline_prefix(callsign) AS airline,
       count(DISTINCT icao24) AS flights,
       count(*) AS positions
FROM positions_clean
WHERE time_position >= date_trunc('hour', now()) - interval '48 hours'
  AND airline_prefix(callsign) IS NOT NULL
GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS analytics_hourly_airline_key ON analytics_hourly_airline (hour, airline);

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_hourly_altitude_band AS
SELECT date_trunc('hour', time_position) AS hour,
       altitude_band(baro_altitude, on_ground) AS band,
       count(DISTINCT icao24) AS flights,
       count(*) AS positions
FROM positions_clean
WHERE time_position >= date_trunc('hour', now()) - interval '48 hours'
GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS analytics_hourly_altitude_band_key ON analytics_hourly_altitude_band (hour, band);

CREATE TABLE IF NOT EXISTS analytics_refresh (
    name         text PRIMARY KEY,
    refreshed_at timestamptz NOT NULL
);

-- Recomputes the three hourly views; returns the refresh time. CONCURRENTLY keeps them readable meanwhile.
CREATE OR REPLACE FUNCTION analytics_refresh() RETURNS timestamptz
LANGUAGE plpgsql AS $$
BEGIN
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics_hourly_country;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics_hourly_airline;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics_hourly_altitude_band;
  INSERT INTO analytics_refresh (name, refreshed_at) VALUES ('hourly', now())
  ON CONFLICT (name) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at;
  RETURN now();
END
$$;
